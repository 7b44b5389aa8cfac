# Optional: each kept function's perplexity under the model, given its code prompt (`scoring` in the config).
# `scoring.enabled` puts code/scored.jsonl in the default target; asking for the file scores whatever it says.


rule score_code:
    input:
        kept=rules.merge_code.output.kept,
    output:
        scored=RUN.code.scored(),
        rejects=RUN.code.score_rejects(),
        failures=RUN.code.score_failures(),
        timing=RUN.code.score_timing(),
    params:
        spec=spec("score_code"),
    resources:
        llm_slots=1,
    log:
        RUN.log("score_code"),
    benchmark:
        RUN.benchmark("score_code")
    shell:
        "{EVO} score {input.kept} --out {output.scored} --rejects {output.rejects} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"
