# Benchmark decontamination: the benchmarks' index, built once per run. split_descriptions sets aside the
# descriptions that match a benchmark prompt (before any request); filter_code drops functions that match one.
# It is rebuilt when what the benchmarks hold changes (params.benchmarks: settings and the files' digests), not
# when a file is touched (ancient): a rebuilt index reruns every shard's check and all that follows.


localrules:
    index_benchmarks,


rule index_benchmarks:
    input:
        [local(ancient(path)) for path in BENCHMARK_FILES],
    output:
        CFG.decontamination.index,
    params:
        benchmarks=BENCHMARKS,
        spec=spec("index_benchmarks"),
    log:
        "logs/index_benchmarks/all.log",
    shell:
        "{EVO} index-benchmarks --out {output} --config {CONFIG_FILE} --log {log}"
