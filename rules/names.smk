# Stage A: sample names in both modes per shard, filter them, merge the shards, A/B metrics.


# Merges and metrics are seconds of I/O: a cluster job each would cost more in queueing than in work.
localrules:
    merge_names,
    names_metrics,
    names_timing,


rule generate_names:
    input:
        shard=RUN.shards.descriptions("{shard}"),
    output:
        raw=RUN.names.raw("{shard}"),
        failures=RUN.names.failures("{shard}"),
        timing=RUN.names.timing("{shard}"),
    params:
        spec=spec("generate_names"),
    resources:
        llm_slots=1,
    log:
        RUN.log("generate_names", "{shard}"),
    benchmark:
        RUN.benchmark("generate_names", "{shard}")
    shell:
        "{EVO} generate-names {input.shard} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule filter_names:
    input:
        raw=rules.generate_names.output.raw,
    output:
        kept=RUN.names.filtered("{shard}"),
        rejects=RUN.names.rejects("{shard}"),
    # before the CPU-heavy jobs: it is quick and unblocks a shard's code generation (keeps the server fed)
    priority: 10
    params:
        spec=spec("filter_names"),
    log:
        RUN.log("filter_names", "{shard}"),
    shell:
        "{EVO} filter-names {input.raw} --out {output.kept} --rejects {output.rejects} "
        "--config {CONFIG_FILE} --log {log}"


rule merge_names:
    input:
        lambda wc: expand(RUN.names.part(wc.part, "{shard}"), shard=SHARDS),
    output:
        RUN.names.part("{part}"),
    wildcard_constraints:
        part="|".join(RUN.names.MERGED),
    log:
        RUN.log("merge_names", "{part}"),
    shell:
        "{EVO} merge {input} --out {output} --config {CONFIG_FILE} --log {log}"


rule names_metrics:
    input:
        raw=RUN.names.raw(),
        kept=RUN.names.filtered(),
        rejects=RUN.names.rejects(),
        failures=RUN.names.failures(),
        shards=expand(RUN.shards.descriptions("{shard}"), shard=SHARDS),
        quarantine=rules.quarantine_descriptions.output[0],
        contaminated=expand(RUN.shards.contaminated("{shard}"), shard=SHARDS),
    output:
        RUN.names.metrics_json,
    log:
        RUN.log("names_metrics"),
    shell:
        "{EVO} names-metrics --raw {input.raw} --kept {input.kept} --rejects {input.rejects} "
        "--failures {input.failures} --shards {input.shards} --quarantine {input.quarantine} "
        "--contaminated {input.contaminated} --out {output} "
        "--config {CONFIG_FILE} --log {log}"


# Wall-clock apart from metrics.json: timings differ run to run, the data and metrics do not.
rule names_timing:
    input:
        shards=expand(RUN.names.timing("{shard}"), shard=SHARDS),
        kept=RUN.names.filtered(),
    output:
        RUN.names.timing_json,
    log:
        RUN.log("names_timing"),
    shell:
        "{EVO} timing --shards {input.shards} --kept {input.kept} --out {output} --config {CONFIG_FILE} --log {log}"
