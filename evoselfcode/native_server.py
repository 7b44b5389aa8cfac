"""llama.cpp's native HTTP server, run in this process from the prebuilt xllamacpp wheel (no compiler needed).

`python -m evoselfcode.native_server --model M.gguf --alias NAME --port P --n-ctx C --parallel N [--threads T]`
serves the OpenAI-compatible `/v1/completions` on 127.0.0.1:P until SIGTERM or SIGINT. Its `--parallel N`
slots decode concurrent requests in one batch (continuous batching); each slot gets `n_ctx` tokens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evoselfcode.native_server", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--alias", required=True, help="the model's name in requests and /v1/models")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, required=True, help="context length of each slot, in tokens")
    parser.add_argument("--parallel", type=int, default=1, help="slots: requests decoded together")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: llama.cpp's)")
    args = parser.parse_args(argv)
    if args.parallel < 1 or args.n_ctx < 1:
        parser.error("--parallel and --n-ctx must be positive")
    if not os.path.isfile(args.model):
        parser.error(f"--model {args.model}: no such file")

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.n_ctx * args.parallel  # llama.cpp splits n_ctx among the slots
    params.cont_batching = True
    if args.threads:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    server = xllamacpp.Server(params)  # loads the model and starts listening

    # llama.cpp installs its own handlers; ours come after them so SIGTERM ends the process at once
    def leave(signum, frame):
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    print(f"serving {args.alias} on {server.listening_address}", file=sys.stderr, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
