# Stage B: continue the selected names per shard, check the functions, merge with global dedup and metrics.


localrules:
    merge_code_parts,
    code_timing,


rule generate_code:
    input:
        names=rules.filter_names.output.kept,
    output:
        raw=RUN.code.raw("{shard}"),
        failures=RUN.code.failures("{shard}"),
        timing=RUN.code.timing("{shard}"),
    params:
        spec=spec("generate_code"),
    resources:
        llm_slots=1,
    log:
        RUN.log("generate_code", "{shard}"),
    benchmark:
        RUN.benchmark("generate_code", "{shard}")
    shell:
        "{EVO} generate-code {input.names} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule filter_code:
    input:
        raw=rules.generate_code.output.raw,
        index=local(ancient(BENCHMARK_INDEX)),  # built when the workflow is parsed (rules/common.smk), as split's
    output:
        kept=RUN.code.filtered("{shard}"),
        rejects=RUN.code.rejects("{shard}"),
    params:
        spec=spec("filter_code"),
    # worker processes for large shards (Snakemake passes threads as OMP_NUM_THREADS); --set-threads for more
    threads: 2
    log:
        RUN.log("filter_code", "{shard}"),
    shell:
        "{EVO} filter-code {input.raw} --index {input.index} --out {output.kept} --rejects {output.rejects} "
        "--config {CONFIG_FILE} --log {log}"


# Global dedup needs every shard; the metrics come with it, so the documented target
# (code/filtered.jsonl) also writes code/metrics.json, which quotes the names A/B verdict.
# With tests on (RUN.stages), the functions that passed them (rules/tests.smk); their rejects join the static
# checks' ones, and with tests off the tests' inputs are empty lists.
rule merge_code:
    input:
        kept=expand(RUN.kept("{shard}"), shard=SHARDS),
        rejects=expand(RUN.code.rejects("{shard}"), shard=SHARDS),
        test_rejects=RUN.tests_files("rejects", SHARDS),
        raw=RUN.code.raw(),
        failures=RUN.code.failures(),
        test_failures=RUN.tests_files("failures", SHARDS),
        selection=RUN.tests_files("selection", SHARDS),
        tests=RUN.tests_files("raw", SHARDS),
        names_metrics=rules.names_metrics.output[0],
    output:
        kept=RUN.code.filtered(),
        rejects=RUN.code.rejects(),
        metrics=RUN.code.metrics_json,
    params:
        spec=spec("merge_code"),
        formatter=formatter_version(),  # the kept functions' code is ruff format's
    threads: 2
    log:
        RUN.log("merge_code"),
    shell:
        "{EVO} merge-code --kept {input.kept} --shard-rejects {input.rejects} {input.test_rejects} --raw {input.raw} "
        "--failures {input.failures} {input.test_failures} --names-metrics {input.names_metrics} --out {output.kept} "
        "--rejects {output.rejects} --metrics {output.metrics} --selection {input.selection} --tests {input.tests} "
        "--config {CONFIG_FILE} --log {log}"


rule merge_code_parts:
    input:
        lambda wc: expand(RUN.code.part(wc.part, "{shard}"), shard=SHARDS),
    output:
        RUN.code.part("{part}"),
    wildcard_constraints:
        part="|".join(RUN.code.MERGED),
    log:
        RUN.log("merge_code_parts", "{part}"),
    shell:
        "{EVO} merge {input} --out {output} --config {CONFIG_FILE} --log {log}"


rule code_timing:
    input:
        shards=expand(RUN.code.timing("{shard}"), shard=SHARDS),
        tests=RUN.tests_files("timing", SHARDS),  # none with tests off
        kept=RUN.code.filtered(),
    output:
        RUN.code.timing_json,
    log:
        RUN.log("code_timing"),
    shell:
        "{EVO} timing --shards {input.shards} --test-shards {input.tests} --kept {input.kept} --out {output} "
        "--config {CONFIG_FILE} --log {log}"
