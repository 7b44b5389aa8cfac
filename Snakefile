# EvoSelfCode: task descriptions -> function names (FIM vs L2R) -> whole functions, checked, tested in a sandbox, deduplicated.
# Stages live in rules/*.smk; their logic in the evoselfcode package, called as `python -m evoselfcode STEP`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "configs/datagen.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/split.smk"
include: "rules/names.smk"
include: "rules/code.smk"
include: "rules/tests.smk"
include: "rules/score.smk"
include: "rules/report.smk"
include: "rules/dataset.smk"


rule all:
    default_target: True
    input:
        RUN.code.filtered(),
        RUN.names.filtered(),
        RUN.names.rejects(),
        RUN.names.timing_json,
        RUN.code.timing_json,
        RUN.scores(),  # with scoring on (RUN.stages)
        rules.plot_metrics.output,  # the plots of `snakemake --report report.html`
        rules.export_dataset.output,  # Parquet + dataset card, loadable with `datasets`


onstart:
    check_before_start()
    start_embedded_server()


onsuccess:
    stop_embedded_server()
    print_summary()


onerror:
    stop_embedded_server()
    say_how_to_resume()
