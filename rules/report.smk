# The plots of `snakemake --report report.html`: A/B test, name rejects, code funnel, lengths, perplexity.
# They are inputs of the default target, so the report (built for that target) always finds them.
# The perplexity plot exists only with scoring.enabled: a run without scores has nothing to draw.


rule plot_metrics:
    input:
        names=rules.names_metrics.output[0],
        code=rules.merge_code.output.metrics,
        kept=rules.merge_code.output.kept,
        scored=RUN.scores(),  # none with scoring off
    output:
        ab=report(RUN.plot("ab_test"), caption="../report/ab_test.rst", category="1. Names (stage A)"),
        rejects=report(RUN.plot("name_rejects"), caption="../report/name_rejects.rst", category="1. Names (stage A)"),
        funnel=report(RUN.plot("code_funnel"), caption="../report/code_funnel.rst", category="2. Code (stage B)"),
        lengths=report(RUN.plot("code_lengths"), caption="../report/code_lengths.rst", category="2. Code (stage B)"),
        **(
            {"ppl": report(RUN.plot("perplexity"), caption="../report/perplexity.rst", category="3. Scores")}
            if RUN.stages.scoring
            else {}
        ),
    params:
        scored=lambda wc, input, output: (
            f"--scored {input.scored} --perplexity {output.ppl}" if input.scored else ""
        ),
    log:
        RUN.log("plot_metrics"),
    shell:
        "{EVO} plot --names-metrics {input.names} --code-metrics {input.code} --records {input.kept} "
        "--ab {output.ab} --name-rejects {output.rejects} --funnel {output.funnel} --lengths {output.lengths} "
        "{params.scored} --config {CONFIG_FILE} --log {log}"
