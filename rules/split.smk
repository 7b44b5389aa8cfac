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
        shard=RUN.shards.descriptions("{shard}"),
        contaminated=RUN.shards.contaminated("{shard}"),
    params:
        lines=lambda wc: INDEX.span(wc.shard).digest,
        spec=spec("split_descriptions"),
    log:
        RUN.log("split_descriptions", "{shard}"),
    shell:
        "{EVO} split {input.source} --shard {wildcards.shard} --index {input.index} --out {output.shard} "
        "--contaminated {output.contaminated} --config {CONFIG_FILE} --log {log}"


rule quarantine_descriptions:
    input:
        local(ancient(CFG.io.input_desc_path)),
    output:
        RUN.shards.quarantine(),
    params:
        lines=INDEX.bad_digest(),
        spec=spec("quarantine_descriptions"),
    log:
        RUN.log("quarantine_descriptions"),
    shell:
        "{EVO} quarantine {input} --out {output} --config {CONFIG_FILE} --log {log}"
