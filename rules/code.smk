# Stage B: continue the selected names per shard, check the functions, merge with global dedup, metrics.


rule generate_code:
    input:
        names=rules.filter_names.output.kept,
    output:
        raw=f"{CODE}/raw/{{shard}}.jsonl",
        failures=f"{CODE}/failures/{{shard}}.jsonl",
    params:
        spec=spec("meta", "namegen", "codegen"),
    resources:
        llm_slots=1,
    log:
        "logs/generate_code/{shard}.log",
    benchmark:
        "benchmarks/generate_code/{shard}.tsv"
    shell:
        "{EVO} generate-code {input.names} --out {output.raw} --failures {output.failures} "
        "--config {CONFIG_FILE} --log {log}"


rule filter_code:
    input:
        raw=rules.generate_code.output.raw,
    output:
        kept=f"{CODE}/filtered/{{shard}}.jsonl",
        rejects=f"{CODE}/rejects/{{shard}}.jsonl",
    params:
        spec=spec("codegen", "filters"),
    log:
        "logs/filter_code/{shard}.log",
    shell:
        "{EVO} filter-code {input.raw} --out {output.kept} --rejects {output.rejects} "
        "--config {CONFIG_FILE} --log {log}"


rule merge_code:
    input:
        kept=expand(f"{CODE}/filtered/{{shard}}.jsonl", shard=SHARDS),
        rejects=expand(f"{CODE}/rejects/{{shard}}.jsonl", shard=SHARDS),
    output:
        kept=f"{CODE}/filtered.jsonl",
        rejects=f"{CODE}/rejects.jsonl",
    params:
        spec=spec("filters"),
    log:
        "logs/merge_code/all.log",
    shell:
        "{EVO} merge-code --kept {input.kept} --shard-rejects {input.rejects} --out {output.kept} "
        "--rejects {output.rejects} --config {CONFIG_FILE} --log {log}"


rule merge_code_parts:
    input:
        lambda wc: expand(f"{CODE}/{wc.part}/{{shard}}.jsonl", shard=SHARDS),
    output:
        f"{CODE}/{{part}}.jsonl",
    wildcard_constraints:
        part="raw|failures",
    log:
        "logs/merge_code_parts/{part}.log",
    shell:
        "{EVO} merge {input} --out {output} --log {log}"


rule code_metrics:
    input:
        raw=f"{CODE}/raw.jsonl",
        kept=rules.merge_code.output.kept,
        rejects=rules.merge_code.output.rejects,
        failures=f"{CODE}/failures.jsonl",
    output:
        f"{CODE}/metrics.json",
    log:
        "logs/code_metrics/all.log",
    shell:
        "{EVO} code-metrics --raw {input.raw} --kept {input.kept} --rejects {input.rejects} "
        "--failures {input.failures} --out {output} --config {CONFIG_FILE} --log {log}"
