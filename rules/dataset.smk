# The loadable dataset: the final records as Parquet plus a dataset card (README.md) made from the run's metrics.
# The card names the config that wrote it; a setting that changes no data (a timeout, the server) does not rewrite it.
import os

DATASET = os.path.join(os.path.dirname(os.path.normpath(CODE)), "dataset")


rule export_dataset:
    input:
        records=rules.score_code.output.scored if CFG.scoring.enabled else rules.merge_code.output.kept,
        code_metrics=rules.merge_code.output.metrics,
        names_metrics=rules.names_metrics.output[0],
    output:
        directory(DATASET),
    params:
        spec=spec("export_dataset"),
    log:
        f"{LOGS}/export_dataset/all.log",
    shell:
        "{EVO} export --records {input.records} --code-metrics {input.code_metrics} "
        "--names-metrics {input.names_metrics} --out {output} --config {CONFIG_FILE} --log {log}"
