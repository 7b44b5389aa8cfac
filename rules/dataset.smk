# The loadable dataset: the final records as Parquet plus a dataset card (README.md) made from the run's metrics.
# The card names the config that wrote it; a setting that changes no data (a timeout, the server) does not rewrite it.


rule export_dataset:
    input:
        records=RUN.final_records(),  # scored.jsonl with scoring on, else merge_code's kept functions
        code_metrics=rules.merge_code.output.metrics,
        names_metrics=rules.names_metrics.output[0],
    output:
        directory(RUN.dataset),
    params:
        spec=spec("export_dataset"),
    log:
        RUN.log("export_dataset"),
    shell:
        "{EVO} export --records {input.records} --code-metrics {input.code_metrics} "
        "--names-metrics {input.names_metrics} --out {output} --config {CONFIG_FILE} --log {log}"
