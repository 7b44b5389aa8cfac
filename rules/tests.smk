# Stage B, validation by execution (tests.enabled): per shard, the model writes tests for each checked function,
# then each function runs with them in the bubblewrap sandbox; merge_code takes the functions that passed.


rule generate_tests:
    input:
        kept=rules.filter_code.output.kept,
    output:
        raw=f"{CODE}/tests/raw/{{shard}}.jsonl",
        failures=f"{CODE}/tests/failures/{{shard}}.jsonl",
        timing=f"{CODE}/tests/timing/{{shard}}.jsonl",
    params:
        spec=spec("generate_tests"),
    resources:
        llm_slots=1,
    log:
        f"{LOGS}/generate_tests/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_tests/{{shard}}.tsv"
    shell:
        "{EVO} generate-tests {input.kept} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule execute_tests:
    input:
        raw=rules.generate_tests.output.raw,
    output:
        kept=f"{CODE}/tested/{{shard}}.jsonl",
        rejects=f"{CODE}/tests/rejects/{{shard}}.jsonl",
    params:
        spec=spec("execute_tests"),
    # one sandbox per thread
    threads: 2
    log:
        f"{LOGS}/execute_tests/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/execute_tests/{{shard}}.tsv"
    shell:
        "{EVO} execute-tests {input.raw} --out {output.kept} --rejects {output.rejects} --workers {threads} "
        "--config {CONFIG_FILE} --log {log}"
