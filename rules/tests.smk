# Stage B, choosing by execution (tests.enabled): per shard, the model writes tests of each description from the
# description and a signature; every candidate of the description runs every test in the bubblewrap sandbox, and
# the candidates that agree win (tests.selection); merge_code takes the chosen functions.


rule generate_tests:
    input:
        raw=rules.generate_code.output.raw,
    output:
        raw=RUN.tests.raw("{shard}"),
        failures=RUN.tests.failures("{shard}"),
        timing=RUN.tests.timing("{shard}"),
    params:
        spec=spec("generate_tests"),
    resources:
        llm_slots=1,
    log:
        RUN.log("generate_tests", "{shard}"),
    benchmark:
        RUN.benchmark("generate_tests", "{shard}")
    shell:
        "{EVO} generate-tests {input.raw} --out {output.raw} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"


rule execute_tests:
    input:
        kept=rules.filter_code.output.kept,
        rejects=rules.filter_code.output.rejects,  # duplicates among them are votes
        tests=rules.generate_tests.output.raw,
    output:
        kept=RUN.code.tested("{shard}"),
        rejects=RUN.tests.rejects("{shard}"),
        selection=RUN.tests.selection("{shard}"),
    params:
        spec=spec("execute_tests"),
    # one sandbox per thread
    threads: 2
    log:
        RUN.log("execute_tests", "{shard}"),
    benchmark:
        RUN.benchmark("execute_tests", "{shard}")
    shell:
        "{EVO} execute-tests {input.kept} --static-rejects {input.rejects} --tests {input.tests} --out {output.kept} "
        "--rejects {output.rejects} --selection {output.selection} --workers {threads} --config {CONFIG_FILE} --log {log}"
