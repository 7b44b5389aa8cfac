# Benchmark decontamination: the benchmarks' index. split_descriptions sets aside the descriptions that match a
# benchmark prompt (before any request); filter_code drops functions that match one.
# The index is named by the digest of what it is built from (settings and the files' contents), and its readers
# take it as ancient(): new content is a new file, so the index and every check rerun in the same run, while a
# touched benchmark file or a lost index (rebuilt when a job needs it) reruns no check.


localrules:
    index_benchmarks,


rule index_benchmarks:
    input:
        [local(ancient(path)) for path in BENCHMARK_FILES],
    output:
        BENCHMARK_INDEX,
    params:
        spec=spec("index_benchmarks"),
    log:
        "logs/index_benchmarks/all.log",
    shell:
        "{EVO} index-benchmarks --out {output} --config {CONFIG_FILE} --log {log}"
