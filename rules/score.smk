# Optional: each kept function's perplexity under the model, given its code prompt (`scoring` in the config).
# `scoring.enabled` puts code/scored.jsonl in the default target; asking for the file scores whatever it says.


rule score_code:
    input:
        kept=rules.merge_code.output.kept,
    output:
        scored=f"{CODE}/scored.jsonl",
        rejects=f"{CODE}/score_rejects.jsonl",
        failures=f"{CODE}/score_failures.jsonl",
        timing=f"{CODE}/score_timing.jsonl",
    params:
        spec=spec("score_code"),
    resources:
        llm_slots=1,
    log:
        f"{LOGS}/score_code/all.log",
    benchmark:
        f"{BENCHMARKS}/score_code/all.tsv"
    shell:
        "{EVO} score {input.kept} --out {output.scored} --rejects {output.rejects} --failures {output.failures} "
        "--timing {output.timing} --config {CONFIG_FILE} --log {log}"
