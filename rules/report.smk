# The plots of `snakemake --report report.html`: A/B test, name rejects, code funnel, lengths, perplexity.
# They are inputs of the default target, so the report (built for that target) always finds them.
# The perplexity plot exists only with scoring.enabled: a run without scores has nothing to draw.
import os

REPORT = os.path.join(os.path.dirname(os.path.normpath(CODE)), "report")


rule plot_metrics:
    input:
        names=rules.names_metrics.output[0],
        code=rules.merge_code.output.metrics,
        kept=rules.merge_code.output.kept,
        scored=rules.score_code.output.scored if CFG.scoring.enabled else [],
    output:
        ab=report(f"{REPORT}/ab_test.svg", caption="../report/ab_test.rst", category="1. Names (stage A)"),
        rejects=report(f"{REPORT}/name_rejects.svg", caption="../report/name_rejects.rst", category="1. Names (stage A)"),
        funnel=report(f"{REPORT}/code_funnel.svg", caption="../report/code_funnel.rst", category="2. Code (stage B)"),
        lengths=report(f"{REPORT}/code_lengths.svg", caption="../report/code_lengths.rst", category="2. Code (stage B)"),
        **(
            {"ppl": report(f"{REPORT}/perplexity.svg", caption="../report/perplexity.rst", category="3. Scores")}
            if CFG.scoring.enabled
            else {}
        ),
    params:
        scored=lambda wc, input, output: (
            f"--scored {input.scored} --perplexity {output.ppl}" if CFG.scoring.enabled else ""
        ),
    log:
        f"{LOGS}/plot_metrics/all.log",
    shell:
        "{EVO} plot --names-metrics {input.names} --code-metrics {input.code} --records {input.kept} "
        "--ab {output.ab} --name-rejects {output.rejects} --funnel {output.funnel} --lengths {output.lengths} "
        "{params.scored} --config {CONFIG_FILE} --log {log}"
