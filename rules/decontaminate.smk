# Benchmark decontamination: the benchmarks' index, built once per run. split_descriptions sets aside the
# descriptions that match a benchmark prompt (before any request); filter_code drops functions that match one.
# The built-in benchmarks are package data; the user's files are inputs, so editing one rebuilds the index.


localrules:
    index_benchmarks,


rule index_benchmarks:
    input:
        [local(path) for path in BENCHMARK_FILES],
    output:
        CFG.decontamination.index,
    params:
        spec=spec("index_benchmarks"),
    log:
        "logs/index_benchmarks/all.log",
    shell:
        "{EVO} index-benchmarks --out {output} --config {CONFIG_FILE} --log {log}"
