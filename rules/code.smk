# Stage B: continue the selected names per shard, check the functions, merge with global dedup and metrics.


localrules:
    merge_code_parts,
    code_timing,


rule generate_code:
    input:
        names=rules.filter_names.output.kept,
    output:
        raw=f"{CODE}/raw/{{shard}}.jsonl",
        failures=f"{CODE}/failures/{{shard}}.jsonl",
        timing=f"{CODE}/timing/{{shard}}.jsonl",
    params:
        spec=spec("generate_code"),
    resources:
        llm_slots=1,
    log:
        f"{LOGS}/generate_code/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_code/{{shard}}.tsv"
    shell:
        "{EVO} generate-code {input.names} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule filter_code:
    input:
        raw=rules.generate_code.output.raw,
        index=local(ancient(BENCHMARK_INDEX)),  # built when the workflow is parsed (rules/common.smk), as split's
    output:
        kept=f"{CODE}/filtered/{{shard}}.jsonl",
        rejects=f"{CODE}/rejects/{{shard}}.jsonl",
    params:
        spec=spec("filter_code"),
    # worker processes for large shards (Snakemake passes threads as OMP_NUM_THREADS); --set-threads for more
    threads: 2
    log:
        f"{LOGS}/filter_code/{{shard}}.log",
    shell:
        "{EVO} filter-code {input.raw} --index {input.index} --out {output.kept} --rejects {output.rejects} "
        "--config {CONFIG_FILE} --log {log}"


# Global dedup needs every shard; the metrics come with it, so the documented target
# (code/filtered.jsonl) also writes code/metrics.json, which quotes the names A/B verdict.
# With tests on, the functions that passed them (rules/tests.smk); their rejects join the static checks' ones.
rule merge_code:
    input:
        kept=expand(f"{CODE}/{'tested' if CFG.tests.enabled else 'filtered'}/{{shard}}.jsonl", shard=SHARDS),
        rejects=expand(f"{CODE}/rejects/{{shard}}.jsonl", shard=SHARDS),
        test_rejects=expand(f"{CODE}/tests/rejects/{{shard}}.jsonl", shard=SHARDS) if CFG.tests.enabled else [],
        raw=f"{CODE}/raw.jsonl",
        failures=f"{CODE}/failures.jsonl",
        test_failures=expand(f"{CODE}/tests/failures/{{shard}}.jsonl", shard=SHARDS) if CFG.tests.enabled else [],
        selection=expand(f"{CODE}/tests/selection/{{shard}}.jsonl", shard=SHARDS) if CFG.tests.enabled else [],
        names_metrics=rules.names_metrics.output[0],
    output:
        kept=f"{CODE}/filtered.jsonl",
        rejects=f"{CODE}/rejects.jsonl",
        metrics=f"{CODE}/metrics.json",
    params:
        spec=spec("merge_code"),
        formatter=formatter_version(),  # the kept functions' code is ruff format's
    threads: 2
    log:
        f"{LOGS}/merge_code/all.log",
    shell:
        "{EVO} merge-code --kept {input.kept} --shard-rejects {input.rejects} {input.test_rejects} --raw {input.raw} "
        "--failures {input.failures} {input.test_failures} --names-metrics {input.names_metrics} --out {output.kept} "
        "--rejects {output.rejects} --metrics {output.metrics} --selection {input.selection} --config {CONFIG_FILE} "
        "--log {log}"


rule merge_code_parts:
    input:
        lambda wc: expand(f"{CODE}/{wc.part}/{{shard}}.jsonl", shard=SHARDS),
    output:
        f"{CODE}/{{part}}.jsonl",
    wildcard_constraints:
        part="raw|failures",
    log:
        f"{LOGS}/merge_code_parts/{{part}}.log",
    shell:
        "{EVO} merge {input} --out {output} --config {CONFIG_FILE} --log {log}"


rule code_timing:
    input:
        shards=expand(f"{CODE}/timing/{{shard}}.jsonl", shard=SHARDS),
        tests=expand(f"{CODE}/tests/timing/{{shard}}.jsonl", shard=SHARDS) if CFG.tests.enabled else [],
        kept=f"{CODE}/filtered.jsonl",
    output:
        f"{CODE}/timing.json",
    log:
        f"{LOGS}/code_timing/all.log",
    shell:
        "{EVO} timing --shards {input.shards} "
        + ("--test-shards {input.tests} " if CFG.tests.enabled else "")
        + "--kept {input.kept} --out {output} --config {CONFIG_FILE} --log {log}"
