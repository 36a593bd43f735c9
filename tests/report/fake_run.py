"""Small fake run directories (metrics.jsonl + summary.json) for the report/compare tests,
written the way server/coordinator/run_recorder.cc writes them."""
import json
import os
import subprocess

SOURCE_DIR = os.environ.get(
    "LFL_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
REPORT = os.path.join(SOURCE_DIR, "scripts", "report.py")
COMPARE = os.path.join(SOURCE_DIR, "scripts", "compare.py")
DEBIAN_PYTHON = "/usr/bin/python3"

DENSE_PER_ROUND = 400000


def make_rows(rounds, uplink, downlink, bits, evaluated_every=2):
    """One row per round; uplink/downlink/bits are functions of the round (1-based).
    Rounds not divisible by evaluated_every (except the last) have null accuracies."""
    rows = []
    for t in range(1, rounds + 1):
        evaluated = t % evaluated_every == 0 or t == rounds
        rows.append({
            "round": t, "attempts": 1, "sampled": 5, "completed": 5, "dropped": 0,
            "evaluated": evaluated,
            "personalized_accuracy": (0.5 + 0.05 * t) if evaluated else None,
            "global_masked_accuracy": (0.2 + 0.04 * t) if evaluated else None,
            "global_accuracy": (0.1 + 0.03 * t) if evaluated else None,
            "mean_density": 0.8 ** t, "pruned_clients": 2, "layer_bits": bits(t),
            "uplink_bytes": uplink(t), "downlink_bytes": downlink(t),
            "dense_fp32_bytes": DENSE_PER_ROUND,
            "train_seconds": 0.5, "encode_seconds": 0.01, "network_seconds": 0.02,
            "aggregate_seconds": 0.1, "wall_seconds": 1.0,
        })
    return rows


def write_run(path, rows, algorithm="lotteryfl", quant="bsq", summary=True):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    if summary:
        with open(os.path.join(path, "summary.json"), "w") as f:
            json.dump({"rounds": len(rows), "wall_seconds": 12.5,
                       "layer_bits": rows[-1]["layer_bits"],
                       "config": {"algorithm": algorithm, "quant": quant, "rounds": len(rows),
                                  "seed": 1}}, f, indent=2)
    return path


def quantized_run(path):
    """LotteryFL + BSQ: bytes fall as tickets shrink, bits fall from 8 to mixed precision."""
    rows = make_rows(6, uplink=lambda t: 100000 - 10000 * t, downlink=lambda t: 120000 - 5000 * t,
                     bits=lambda t: [max(0, 8 - t), 8, max(2, 8 - 2 * t), 7])
    return write_run(path, rows)


def fp32_run(path):
    """FedAvg without quantization: dense bytes, fp32 bits."""
    rows = make_rows(6, uplink=lambda t: DENSE_PER_ROUND + 64, downlink=lambda t: DENSE_PER_ROUND,
                     bits=lambda t: [32.0] * 4)
    return write_run(path, rows, algorithm="fedavg", quant="none")


def run(args, python=DEBIAN_PYTHON, cwd=None):
    return subprocess.run([python] + args, capture_output=True, text=True, cwd=cwd, timeout=120)
