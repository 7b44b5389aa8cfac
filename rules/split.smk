# Validate the description file and split it into shards of io.shard_size descriptions.
# The shard list is computed from a line count when the DAG is built (see datagen/inputs.py).


rule split_descriptions:
    input:
        CFG.io.input_desc_path,
    output:
        shards=expand(f"{SHARD_DIR}/{{shard}}.jsonl", shard=SHARDS),
        quarantine=f"{SHARD_DIR}/quarantine.jsonl",
    params:
        spec=spec("io.input_desc_path", "io.shard_size", "io.on_bad_line", "io.max_desc_chars"),
    log:
        "logs/split_descriptions/all.log",
    shell:
        "{EVO} split {input} --shards {output.shards} --quarantine {output.quarantine} "
        "--config {CONFIG_FILE} --log {log}"
