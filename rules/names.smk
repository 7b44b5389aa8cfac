# Stage A: sample names in both modes per shard, filter them, merge the shards, A/B metrics.


# Merges and metrics are seconds of I/O: a cluster job each would cost more in queueing than in work.
localrules:
    merge_names,
    names_metrics,
    names_timing,


rule generate_names:
    input:
        shard=f"{SHARD_DIR}/{{shard}}.jsonl",
    output:
        raw=f"{NAMES}/raw/{{shard}}.jsonl",
        failures=f"{NAMES}/failures/{{shard}}.jsonl",
        timing=f"{NAMES}/timing/{{shard}}.jsonl",
    params:
        spec=spec("generate_names"),
    resources:
        llm_slots=1,
    log:
        f"{LOGS}/generate_names/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_names/{{shard}}.tsv"
    shell:
        "{EVO} generate-names {input.shard} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule filter_names:
    input:
        raw=rules.generate_names.output.raw,
    output:
        kept=f"{NAMES}/filtered/{{shard}}.jsonl",
        rejects=f"{NAMES}/rejects/{{shard}}.jsonl",
    # before the CPU-heavy jobs: it is quick and unblocks a shard's code generation (keeps the server fed)
    priority: 10
    params:
        spec=spec("filter_names"),
    log:
        f"{LOGS}/filter_names/{{shard}}.log",
    shell:
        "{EVO} filter-names {input.raw} --out {output.kept} --rejects {output.rejects} "
        "--config {CONFIG_FILE} --log {log}"


rule merge_names:
    input:
        lambda wc: expand(f"{NAMES}/{wc.part}/{{shard}}.jsonl", shard=SHARDS),
    output:
        f"{NAMES}/{{part}}.jsonl",
    wildcard_constraints:
        part="raw|filtered|rejects|failures",
    log:
        f"{LOGS}/merge_names/{{part}}.log",
    shell:
        "{EVO} merge {input} --out {output} --config {CONFIG_FILE} --log {log}"


rule names_metrics:
    input:
        raw=f"{NAMES}/raw.jsonl",
        kept=f"{NAMES}/filtered.jsonl",
        rejects=f"{NAMES}/rejects.jsonl",
        failures=f"{NAMES}/failures.jsonl",
        shards=expand(f"{SHARD_DIR}/{{shard}}.jsonl", shard=SHARDS),
        quarantine=rules.quarantine_descriptions.output[0],
        contaminated=expand(f"{SHARD_DIR}/contaminated/{{shard}}.jsonl", shard=SHARDS),
    output:
        f"{NAMES}/metrics.json",
    log:
        f"{LOGS}/names_metrics/all.log",
    shell:
        "{EVO} names-metrics --raw {input.raw} --kept {input.kept} --rejects {input.rejects} "
        "--failures {input.failures} --shards {input.shards} --quarantine {input.quarantine} "
        "--contaminated {input.contaminated} --out {output} "
        "--config {CONFIG_FILE} --log {log}"


# Wall-clock apart from metrics.json: timings differ run to run, the data and metrics do not.
rule names_timing:
    input:
        shards=expand(f"{NAMES}/timing/{{shard}}.jsonl", shard=SHARDS),
        kept=f"{NAMES}/filtered.jsonl",
    output:
        f"{NAMES}/timing.json",
    log:
        f"{LOGS}/names_timing/all.log",
    shell:
        "{EVO} timing --shards {input.shards} --kept {input.kept} --out {output} --config {CONFIG_FILE} --log {log}"
