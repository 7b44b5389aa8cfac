# Split the checked description file into shards of io.shard_size descriptions, one job per shard;
# descriptions that match a benchmark go to {shards_dir}/contaminated/{shard}.jsonl, never to the server.
# ancient(): a shard reruns when its own lines change (params.lines), not whenever the file is appended to;
# the benchmark index is a new file, so a new input, when what it is built from changes (rules/common.smk).
# local(): the DAG is built from these files where the workflow is parsed (the index is written then), so with
# a default storage provider (profiles/kubernetes) the jobs read them too, not a storage copy that may differ.


rule split_descriptions:
    input:
        source=local(ancient(CFG.io.input_desc_path)),
        index=local(ancient(BENCHMARK_INDEX)),
    output:
        shard=f"{SHARD_DIR}/{{shard}}.jsonl",
        contaminated=f"{SHARD_DIR}/contaminated/{{shard}}.jsonl",
    params:
        lines=lambda wc: INDEX.span(wc.shard).digest,
        spec=spec("split_descriptions"),
    log:
        f"{LOGS}/split_descriptions/{{shard}}.log",
    shell:
        "{EVO} split {input.source} --shard {wildcards.shard} --index {input.index} --out {output.shard} "
        "--contaminated {output.contaminated} --config {CONFIG_FILE} --log {log}"


rule quarantine_descriptions:
    input:
        local(ancient(CFG.io.input_desc_path)),
    output:
        f"{SHARD_DIR}/quarantine.jsonl",
    params:
        lines=INDEX.bad_digest(),
        spec=spec("quarantine_descriptions"),
    log:
        f"{LOGS}/quarantine_descriptions/all.log",
    shell:
        "{EVO} quarantine {input} --out {output} --config {CONFIG_FILE} --log {log}"
