# Stage B, choosing by execution (tests.enabled): per shard, the model writes tests of each description from the
# description and a signature; every candidate of the description runs every test in the bubblewrap sandbox, and
# the candidates that agree win (tests.selection); merge_code takes the chosen functions.


rule generate_tests:
    input:
        raw=rules.generate_code.output.raw,
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
        "{EVO} generate-tests {input.raw} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule execute_tests:
    input:
        kept=rules.filter_code.output.kept,
        rejects=rules.filter_code.output.rejects,  # duplicates among them are votes
        tests=rules.generate_tests.output.raw,
    output:
        kept=f"{CODE}/tested/{{shard}}.jsonl",
        rejects=f"{CODE}/tests/rejects/{{shard}}.jsonl",
        selection=f"{CODE}/tests/selection/{{shard}}.jsonl",
    params:
        spec=spec("execute_tests"),
    # one sandbox per thread
    threads: 2
    log:
        f"{LOGS}/execute_tests/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/execute_tests/{{shard}}.tsv"
    shell:
        "{EVO} execute-tests {input.kept} --static-rejects {input.rejects} --tests {input.tests} --out {output.kept} "
        "--rejects {output.rejects} --selection {output.selection} --workers {threads} --config {CONFIG_FILE} --log {log}"
