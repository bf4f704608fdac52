#!/usr/bin/env python3
"""`make pieces`: what each hand-written piece of the AWS path gains where the
function runs (issue 25's table).

For each piece, a copy of the tree with that piece switched off (the edits in PIECES,
applied to the copy only: the tree is never changed) is built for release, and
bench/power.py measures it at 256 and 1769 MB beside the tree as it is. The tree as it
is runs first and last: the difference between its two runs is the noise floor of
each row. A gain is (without - with) / without, in % of the row without the piece.

    python3 bench/pieces.py [--only https,sigv4] [--sizes 256,1769] [--skip-build]

Candidates (CANDIDATES, e.g. mimalloc) are the other way round: pieces not in
the tree, measured added to a copy. `--out NAME` writes bench/results/NAME.{md,json}.

Writes bench/results/pieces.{md,json}; prints the table and one summary line.
"""
import argparse
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORK = ROOT / "target/pieces"

# (path, text in the tree, its replacement): each text must be found exactly once, so
# that an edit that no longer applies stops the run instead of measuring the tree.
SDK_HTTPS = '''
/// The SDK's own HTTPS client (hyper 1 over rustls with ring), trusting the same roots.
fn sdk_https(extra: Option<Vec<u8>>) -> SharedHttpClient {
    use aws_smithy_http_client::tls;
    let mut store = tls::TrustStore::empty().with_pem_certificate(AWS_ROOT_CAS);
    if let Some(pem) = extra {
        store = store.with_pem_certificate(pem);
    }
    let context = tls::TlsContext::builder().with_trust_store(store).build().expect("tls");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}
'''
PIECES = {
    "https": ("aws::https: HTTP/1.1 client (no HTTP/2), answers read up to 4 MiB",
              "the SDK's client (hyper 1, HTTP/2 capable) with the same bundled roots", [
        ("Cargo.toml", '[dependencies]\n',
         '[dependencies]\naws-smithy-http-client = { version = "1.5", default-features = false, features = ["rustls-ring"] }\n'),
        ("src/startup.rs", "    let http = https_client(extra_root_cas()?)?;\n",
         "    let http = sdk_https(extra_root_cas()?);\n"),
        ("src/startup.rs", "/// The token keys: from the environment", SDK_HTTPS + "\n/// The token keys: from the environment"),
    ]),
    "turns": ("aws::turns: a batch's calls started a scheduler turn apart", "starting them all in one poll", [
        ("src/aws/turns.rs", "            .replace(next);\n", "            .take()\n            .filter(|_| false);\n        drop(next);\n"),
    ]),
    "hs256": ("auth::hs256: HS256 through ring", "jsonwebtoken's rust_crypto backend", [
        ("Cargo.toml", 'jsonwebtoken = { version = "12", default-features = false }',
         'jsonwebtoken = { version = "12", default-features = false, features = ["rust_crypto"] }'),
        ("src/auth.rs", "        hs256::install();\n", ""),
    ]),
}
# Candidates: pieces not in the tree, measured added to a copy of it (the files named
# are created in the copy). Their gain is (tree - with it) / tree.
ALLOC_RS = (ROOT / "bench/candidates/alloc.rs")
CANDIDATES = {
    "mimalloc": ("mimalloc, committing on demand (bench/candidates/alloc.rs; removed in 0d5c196)", "glibc's malloc", [
        ("Cargo.toml", "[dependencies]\n",
         '[dependencies]\nlibmimalloc-sys = { version = "=0.1.49", default-features = false, features = ["extended"] }\n'
         'mimalloc = { version = "0.1.52", default-features = false }\n'),
        ("src/lib.rs", "pub mod auth;\n", "pub mod alloc;\npub mod auth;\n"),
        ("src/bin/lambda/http.rs", "fn main() -> Result<(), Error> {\n",
         "image_delete::use_tuned_allocator!();\n\nfn main() -> Result<(), Error> {\n"),
    ], {"src/alloc.rs": ALLOC_RS}),
}
PIECES.update({name: spec[:3] for name, spec in CANDIDATES.items()})

# The rows compared, as bench/power.py names them, and whether each is a wall-time
# (or size) row of the bar; CPU rows show where a gain comes from. Walls are means:
# under the quota a request's wall time is quantised by the period, and the mean over
# random phases follows its CPU time smoothly where the median jumps.
ROWS = [
    ("init_ms", "cold start (init), wall", True),
    ("init_cpu_ms", "cold start (init), CPU", False),
    ("first_9_tls_ms", "1st request, 9 ids, TLS, wall", True),
    ("first_9_tls_cpu_ms", "1st request, 9 ids, TLS, CPU", False),
    ("first_1000_tls_ms", "1st request, 1000 ids, TLS, wall", True),
    ("first_1000_tls_cpu_ms", "1st request, 1000 ids, TLS, CPU", False),
    ("warm_9_ms", "warm 9 ids, wall", True),
    ("warm_9_cpu_ms", "warm 9 ids, CPU", False),
    ("warm_1000_ms", "warm 1000 ids, wall", True),
    ("warm_1000_cpu_ms", "warm 1000 ids, CPU", False),
    ("warm_1000_ms_billed_d", "warm 1000 ids, D = 10 ms, wall", True),
    ("peak_rss_mib", "peak RSS", True),
    ("zip_bytes", "zip", True),
]
BAR = 5.0  # % at 256 MB: a piece stays if it clears this on a headline row


def copy_tree(dest, slug):
    """The tree as it is (tracked files, working copies) in `dest`, its package named
    for `slug`: cargo keys a path package's build by name, not by where it lies, and
    the copies share one target dir (their dependencies built once)."""
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if name.startswith("fuzz/"):
            continue
        src, dst = ROOT / name, dest / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    manifest = dest / "Cargo.toml"
    text = manifest.read_text()
    if text.count('name = "image-delete"\n') != 1:
        sys.exit("pieces: Cargo.toml no longer names the package image-delete")
    manifest.write_text(text.replace('name = "image-delete"\n', f'name = "image-delete-{slug}"\n'))


def apply(dest, piece):
    for path, source in (CANDIDATES.get(piece, (None,) * 4)[3] or {}).items():
        shutil.copy(source, dest / path)
    for path, old, new in PIECES[piece][2]:
        file = dest / path
        text = file.read_text()
        if isinstance(old, re.Pattern):
            text, n = old.subn(new, text)
            if n == 0:
                sys.exit(f"pieces: {piece}: pattern {old.pattern!r} not found in {path}")
        else:
            if text.count(old) != 1:
                sys.exit(f"pieces: {piece}: {path} holds {text.count(old)} copies of {old!r}, not 1: update PIECES")
            text = text.replace(old, new)
        file.write_text(text)


def build(name, piece):
    """Builds the function with `piece` switched off (None: as it is); the binary's path."""
    src = WORK / "src" / name
    copy_tree(src, name)
    if piece:
        apply(src, piece)
    print(f"[pieces] building {name}", file=sys.stderr, flush=True)
    # One target dir for every copy: the dependencies are built once.
    subprocess.run(["cargo", "build", "--release", "--bin", "delete-images", "--target-dir", str(ROOT / "target")],
                   cwd=src, check=True)
    out = WORK / "bin" / name
    out.mkdir(parents=True, exist_ok=True)
    binary = out / "bootstrap"
    shutil.copy2(ROOT / "target/release/delete-images", binary)
    with zipfile.ZipFile(out / "bootstrap.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(binary, "bootstrap")
    return binary


def measure(name, binary, args, run):
    out = WORK / "runs" / f"{name}-{run}"
    subprocess.run([sys.executable, str(ROOT / "bench/power.py"), "--binary", str(binary), "--sizes", args.sizes,
                    "--skip-peer", "--cold-starts", str(args.cold_starts), "--warm-requests", str(args.warm_requests),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    rows = json.loads((out / "power.json").read_text())["rust"]
    zip_bytes = (binary.parent / "bootstrap.zip").stat().st_size
    return {mb: {key: (r[key]["mean"] if isinstance(r[key], dict) else r[key]) for key, _, _ in ROWS[:-1]}
            | {"zip_bytes": zip_bytes} for mb, r in rows.items()}


def gain(without, base):
    return 100.0 * (without - base) / without if without else 0.0


def mean_of(runs, mb, key):
    return statistics.fmean(run[mb][key] for run in runs)


def report(results, sizes, pieces, started, name="pieces"):
    base_runs = results["as it is"]
    base = {mb: {k: mean_of(base_runs, mb, k) for k, _, _ in ROWS} for mb in sizes}
    noise = {mb: {k: 100.0 * (max(r[mb][k] for r in base_runs) - min(r[mb][k] for r in base_runs)) / base[mb][k]
                  if base[mb][k] else 0.0 for k, _, _ in ROWS} for mb in sizes}
    sized = " / ".join(f"{mb} MB" for mb in sizes)
    lines = [f"| row (gain at {sized}) | noise | " + " | ".join(f"`{p}`" for p in pieces) + " |",
             "|---|---|" + "---|" * len(pieces)]
    def gain_of(p, mb, k):
        copy, tree = mean_of(results[p], mb, k), base[mb][k]
        # A removed piece: the copy lacks it. A candidate: the tree does.
        return gain(tree, copy) if p in CANDIDATES else gain(copy, tree)
    gains = {p: {mb: {k: gain_of(p, mb, k) for k, _, _ in ROWS} for mb in sizes} for p in pieces}
    for key, label, _ in ROWS:
        cells = [" / ".join(f"{gains[p][mb][key]:+.1f}" for mb in sizes) for p in pieces]
        lines.append(f"| {label} | ±" + " / ".join(f"{noise[mb][key]:.1f}" for mb in sizes) + " | "
                     + " | ".join(cells) + " |")
    first = sizes[0]
    verdicts = {p: [label for key, label, bar in ROWS if bar and gains[p][first][key] >= BAR
                    and gains[p][first][key] > noise[first][key]] for p in pieces}
    lines.append(f"| clears {BAR:g} % at {first} MB on | | "
                 + " | ".join(", ".join(verdicts[p]) or "nothing" for p in pieces) + " |")
    legend = ["", "| piece | what it is | what it replaces |", "|---|---|---|"]
    legend += [f"| `{p}` | {PIECES[p][0]} | {PIECES[p][1]} |" for p in pieces]
    absolute = ["", "The tree as it is (means of its runs):", "",
                "| row | " + " | ".join(f"{mb} MB" for mb in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for key, label, _ in ROWS:
        unit = "bytes" if key == "zip_bytes" else ("MiB" if key == "peak_rss_mib" else "ms")
        absolute.append(f"| {label}, {unit} | " + " | ".join(f"{base[mb][key]:.2f}" for mb in sizes) + " |")
    text = "\n".join(lines + legend + absolute)
    out = ROOT / "bench/results"
    (out / f"{name}.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "sizes": sizes,
                                                 "results": results, "noise": noise, "gains": gains,
                                                 "verdicts": verdicts}, indent=2) + "\n")
    (out / f"{name}.md").write_text(
        f"# Pieces ({time.strftime('%Y-%m-%d %H:%M:%S')})\n\nCommand: `python3 bench/pieces.py "
        f"--only {','.join(pieces)} --sizes {','.join(sizes)} --rounds {results['rounds']} --cold-starts "
        f"{results['cold_starts']} --warm-requests {results['warm_requests']} --out {name}`. Each piece is "
        f"switched off in a copy of the tree (a candidate added to one) and built for release; bench/power.py measures each build at "
        f"{' and '.join(sizes)} MB under the CPU quota, {results['rounds']} rounds, the builds taking turns (D = 0 "
        f"unless the row says so; {results['cold_starts']} cold starts and {results['warm_requests']} warm requests "
        f"per round, means). Cells: gain = (without - with) / without, in %, at {sized}; positive: the piece helps. "
        f"Noise: the spread of the tree's own runs, in % of their mean. Zip: the x86_64 binary, deflated. A piece "
        f"clears the bar with >= {BAR:g} % at {first} MB on a wall, RSS or zip row, above that row's noise.\n\n{text}\n")
    print(text)
    kept = [p for p in pieces if verdicts[p]]
    print(f"pieces: {len(pieces)} measured at {', '.join(sizes)} MB; clear {BAR:g} % at {first} MB: "
          f"{', '.join(kept) or 'none'}; under: {', '.join(p for p in pieces if not verdicts[p]) or 'none'}; "
          f"{time.time() - started:.0f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PIECES))
    parser.add_argument("--sizes", default="256,1769")
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument("--warm-requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-build", action="store_true", help="measure the builds of an earlier run")
    parser.add_argument("--check", action="store_true", help="only apply each piece's edits and cargo check the copy")
    parser.add_argument("--out", default="pieces", help="the results' file name in bench/results")
    args = parser.parse_args()
    pieces = [p for p in args.only.split(",") if p]
    unknown = [p for p in pieces if p not in PIECES]
    if unknown:
        sys.exit(f"pieces: unknown {unknown}; known: {', '.join(PIECES)}")
    started = time.time()
    if args.check:
        for piece in pieces:
            src = WORK / "src" / piece
            copy_tree(src, piece)
            apply(src, piece)
            subprocess.run(["cargo", "check", "--bin", "delete-images", "--target-dir", str(ROOT / "target")],
                           cwd=src, check=True)
        print(f"pieces: {len(pieces)} edits apply and build")
        return
    names = ["as it is"] + pieces
    binaries = {}
    for name, piece in zip(names, [None] + pieces):
        slug = name.replace(" ", "-")
        binaries[name] = (WORK / "bin" / slug / "bootstrap") if args.skip_build else build(slug, piece)
    # Builds first, then every measurement, so that no build runs beside one; the
    # builds take turns, round after round, the tree as it is at both ends of each.
    results = {"cold_starts": args.cold_starts, "warm_requests": args.warm_requests, "rounds": args.rounds}
    for name in names:
        results[name] = []
    sizes = args.sizes.split(",")
    for round_ in range(1, args.rounds + 1):
        order = pieces if round_ % 2 else pieces[::-1]
        for name in ["as it is"] + order + (["as it is"] if round_ == args.rounds else []):
            print(f"[pieces] round {round_}: measuring {name}", file=sys.stderr, flush=True)
            results[name].append(measure(name.replace(" ", "-"), binaries[name], args, len(results[name]) + 1))
    report(results, sizes, pieces, started, args.out)


if __name__ == "__main__":
    main()
