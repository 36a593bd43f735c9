#!/usr/bin/env python3
"""Make a copy of the set-up LotteryFL reference whose Fashion-MNIST shards are dealt the way
lotteryfl's `shards` partition deals them: every client gets 2 distinct classes, and every class
goes to equally many clients (within one); one random shard of 20 of each class, all images
distinct. The stock reference draws 2 random shards of the label-sorted training set, so a
client can hold one class twice and some classes go to many more clients than others
(docs/reference.md, "The partition").

    bench/reference/balanced_reference.py DEST       # then:
    PEERS_DIR=DEST bench/reference/compare.py --ref-variant balanced ...

DEST/lotteryfl gets a copy of $PEERS_DIR/lotteryfl/src (default ~/.cache/peers) with one line of
`sampling.mnist_extr_noniid` (the shard draw) replaced and a helper added, and symlinks to its
shim and data. Nothing else of the reference changes; the edit draws from the same numpy RNG.
"""
import os
import shutil
import sys

DRAW = "        rand_set = set(np.random.choice(idx_shard, n_class, replace=False))\n"
BALANCED_DRAW = (
    "        rand_set = set()  # [bench/reference] n_class distinct classes, classes used equally\n"
    "        for c in _pairs[i]:\n"
    "            cand = [x for x in idx_shard if int(labels[x * num_imgs_train]) == c and x not in rand_set]\n"
    "            rand_set.add(int(np.random.choice(cand)))\n")
HELPER = '''def _balanced_pairs(num_users, n_class, num_classes):
    """[bench/reference] per user n_class distinct classes, every class used equally often (within one)."""
    slots = []
    while len(slots) < num_users * n_class:
        slots.extend(np.random.permutation(num_classes).tolist())
    pairs = []
    for _ in range(num_users):
        chosen = []
        for _ in range(n_class):
            j = next(k for k, c in enumerate(slots) if c not in chosen)
            chosen.append(slots.pop(j))
        pairs.append(chosen)
    return pairs


'''


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    src = os.path.join(os.environ.get("PEERS_DIR", os.path.expanduser("~/.cache/peers")), "lotteryfl")
    dest = os.path.join(os.path.abspath(sys.argv[1]), "lotteryfl")
    if not os.path.isfile(os.path.join(src, "src", "src", "harness.py")):
        sys.exit(f"the reference is not set up in {src} (run the peers harness's setup.sh first)")
    shutil.rmtree(os.path.join(dest, "src"), ignore_errors=True)
    os.makedirs(os.path.join(dest, "logs"), exist_ok=True)
    shutil.copytree(os.path.join(src, "src"), os.path.join(dest, "src"))
    for link in ("shim", "data"):
        path = os.path.join(dest, link)
        if os.path.islink(path):
            os.remove(path)
        os.symlink(os.path.join(src, link), path)
    sampling = os.path.join(dest, "src", "src", "sampling.py")
    text = open(sampling).read()
    start, end = text.index("def mnist_extr_noniid"), text.index("def miniimagenet_extr_noniid")
    body = text[start:end]
    if body.count(DRAW) != 1 or body.count("    # divide and assign\n") != 1:
        sys.exit(f"{sampling}: mnist_extr_noniid is not the expected 6b05c9c text")
    body = body.replace(DRAW, BALANCED_DRAW).replace(
        "    # divide and assign\n",
        "    # divide and assign\n    _pairs = _balanced_pairs(num_users, n_class, num_classes)\n")
    with open(sampling, "w") as f:
        f.write(text[:start] + HELPER + body + text[end:])
    print(f"balanced-shards reference in {dest}; run with PEERS_DIR={os.path.dirname(dest)}")


if __name__ == "__main__":
    main()
