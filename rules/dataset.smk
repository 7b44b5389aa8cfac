# The loadable dataset: the final records as Parquet plus a dataset card (README.md) made from the run's metrics.
# The card quotes the config digest, so any config change writes it again (the export takes seconds).
import os

DATASET = os.path.join(os.path.dirname(CODE.rstrip("/")), "dataset")


rule export_dataset:
    input:
        records=rules.score_code.output.scored if CFG.scoring.enabled else rules.merge_code.output.kept,
        code_metrics=rules.merge_code.output.metrics,
        names_metrics=rules.names_metrics.output[0],
    output:
        directory(DATASET),
    params:
        config=CFG.digest(),
    log:
        "logs/export_dataset/all.log",
    shell:
        "{EVO} export --records {input.records} --code-metrics {input.code_metrics} "
        "--names-metrics {input.names_metrics} --out {output} --config {CONFIG_FILE} --log {log}"
