"""Command line: ``kgen build | verify | check | list``.

Exit status: 0 success, 1 verification mismatch, 2 bad input (located message, no traceback),
3 missing or failing external tool.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import KgenError, ToolchainError


def parse_shape(text: str | None) -> dict[str, int]:
    """``M=64,K=3,N=5`` → dict; errors name the offending item."""
    out: dict[str, int] = {}
    if not text:
        return out
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise KgenError(f"--shape: expected NAME=VALUE, got '{item}'")
        try:
            v = int(value, 0)
        except ValueError:
            raise KgenError(f"--shape: value of {name} must be an integer, got '{value}'") from None
        if v < 1:
            raise KgenError(f"--shape: {name} must be >= 1, got {v}")
        out[name] = v
    return out


def _complete_sizes(kernel_name: str, symbols: tuple[str, ...], sizes: dict[str, int],
                    defaults: dict[str, int]) -> dict[str, int]:
    unknown = [s for s in sizes if s not in symbols]
    if unknown:
        raise KgenError(f"--shape: kernel {kernel_name} has no size '{unknown[0]}' "
                        f"(its sizes: {', '.join(symbols)})")
    return {s: sizes.get(s, defaults.get(s, 16)) for s in symbols}


ALL_ISAS = ("generic", "armv7em", "xpulpv2")
#: Cortex-M cores kgen verifies and benchmarks on QEMU (kgen.sim.arm.MACHINES)
CPUS = ("cortex-m4", "cortex-m7")


def cmd_build(args: argparse.Namespace) -> int:
    import time

    from .buildpool import default_jobs
    from .library import load_sources, resolve
    from .release import VariantRequest, differences, render_releases, write_atomically
    from .variants import release_requests

    t0 = time.perf_counter()
    isas = list(ALL_ISAS) if args.isa == "all" else [args.isa]
    sources = load_sources(args.dsl)
    selected = resolve(args.ops, sources)
    if args.only:
        selected = [s for s in selected if args.only in s.kernel.name]
        if not selected:
            raise KgenError(f"--only {args.only}: no kernel matches")
    shape = parse_shape(args.shape)
    work = []
    for isa in isas:
        if shape:
            work.append((isa, [VariantRequest(s, _complete_sizes(s.kernel.name, s.kernel.sizes, shape, {}))
                               for s in selected]))
        else:
            work.append((isa, release_requests(isa, selected, args.variants or ())))
    jobs = args.jobs if args.jobs else default_jobs()
    releases = render_releases(work, jobs)
    base = Path(args.out) if args.out else Path("generated")
    outs = {isa: (base / isa if args.isa == "all" or not args.out else base) for isa in isas}
    if args.check:
        stale = False
        for isa in isas:
            files, out = releases[isa], outs[isa]
            diffs = differences(out, files)
            if diffs:
                stale = True
                print(f"kgen build --check: {out} is not what the current sources produce:", file=sys.stderr)
                for d in diffs[:50]:
                    print(f"  {d}", file=sys.stderr)
            else:
                print(f"{out}: up to date ({len(files)} files)")
        return 1 if stale else 0
    for isa in isas:
        files, out = releases[isa], outs[isa]
        write_atomically(out, files)
        n = sum(1 for f in files if f.startswith("src/"))
        print(f"wrote {out}: {n} kernel{'s' if n != 1 else ''} for {isa}")
    if args.depfile:
        from .depfile import render_depfile, write_depfile

        write_depfile(Path(args.depfile), render_depfile([outs[i] / "manifest.json" for i in isas],
                                                         [*(args.dsl or ()), *(args.variants or ())]))
    if args.time:
        print(f"built {len(isas)} release{'s' if len(isas) != 1 else ''} in {time.perf_counter() - t0:.1f} s "
              f"({jobs} job{'s' if jobs != 1 else ''})", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .library import load_sources, resolve
    from .verify import describe_failure, verify

    sources = load_sources(args.dsl)
    (src,) = resolve([args.op], sources)
    sizes = _complete_sizes(src.kernel.name, src.kernel.sizes, parse_shape(args.shape), {})
    targets = _targets(args)
    failed = 0
    for target in targets:
        result = verify(src, args.isa, sizes, target, seed=args.seed)
        if result.ok:
            outputs = [s for s in result.report.summaries if s["buf"] not in ("scratch_guard", "get_buffer_size")]
            cases = len({s["case"] for s in outputs})
            total = sum(int(s["total"]) for s in outputs)
            extra = f", {result.region_instructions[0]} instructions" if result.region_instructions else ""
            if len(outputs) != len(result.report.summaries):
                extra += ", scratch guards intact"
            print(f"PASS {src.kernel.name} isa={args.isa} target={target} sizes={sizes}: "
                  f"{cases} cases, {total} outputs bit-exact{extra}")
        else:
            failed += 1
            print(describe_failure(result, src))
    return 1 if failed else 0


def _targets(args: argparse.Namespace):
    from .verify import Target

    compilers = [args.compiler] if args.compiler else ["gcc", "clang"]
    if args.isa == "generic" and not args.cpu:
        return [Target("host", c, opt="-O2", sanitize=not args.no_sanitize) for c in compilers]
    if args.isa == "armv7em" or (args.cpu or "").startswith("cortex"):
        cpus = [args.cpu] if args.cpu else ["cortex-m4", "cortex-m7"]
        return [Target("qemu", c, cpu, opt=args.opt or "-O3") for cpu in cpus for c in compilers]
    if args.isa == "xpulpv2":
        return [Target("spike", "clang", "rv32", opt=args.opt or "-O3", cores=args.cores)]
    raise KgenError(f"no verification target for ISA '{args.isa}' with cpu '{args.cpu}'")


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench, write_json
    from .library import load_sources

    if args.isa == "generic":
        raise KgenError("kgen bench measures simulated targets: use --isa armv7em or --isa xpulpv2")
    records = run_bench(load_sources(args.dsl), args.isa, _targets(args), args.only,
                        extra_matrix=args.variants or ())
    if not records:
        raise KgenError("kgen bench: nothing to measure (no [[bench]] entry of the variant matrix matches)")
    for r in records:
        per = r.get("instructions_per_mac") or r.get("instructions_per_element")
        unit = "MAC" if "macs" in r else "element"
        print(f"{r['kernel']:24s} {str(r['shape']):40s} {r['compiler']:22s} cores={r['cores']} "
              f"instructions={r['instructions']} ({per} per {unit}) cycles_est={r.get('cycles_est')} "
              f"bit_exact={r['bit_exact']}")
    if args.json:
        write_json(records, Path(args.json))
    return 0 if all(r["bit_exact"] for r in records) else 1


def cmd_memory(args: argparse.Namespace) -> int:
    import json

    from .transformer.memory import markdown_table, memory_report

    report = memory_report()
    print("Activation memory peak of MHSA: layer-wise vs depth-first (bytes; kgen/transformer/memory.py)")
    print(markdown_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .parser import parse_file
    from .printer import print_kernel

    from .deadcode import unused_warnings

    for path in args.files:
        kernels = parse_file(path)
        for k in kernels:
            for warning in unused_warnings(k):
                print(warning, file=sys.stderr)
        if args.print:
            for k in kernels:
                sys.stdout.write(print_kernel(k))
        else:
            print(f"{path}: {len(kernels)} kernel{'s' if len(kernels) != 1 else ''} OK")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .library import load_sources

    for name, src in sorted(load_sources(args.dsl).items()):
        first = src.kernel.doc.splitlines()[0] if src.kernel.doc else ""
        print(f"{name:28s} {src.source_name:32s} {first}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """``kgen explain``: the schedule steps, the chosen tiles and why, formulas, alternatives."""
    from .explain import explain
    from .library import load_sources, resolve
    from .variants import load_matrix

    sources = load_sources(args.dsl)
    (src,) = resolve([args.op], sources)
    defaults = next((dict(sh) for e in load_matrix() if e["kernel"] == src.kernel.name for sh in e.get("shapes", [])), {})
    sizes = _complete_sizes(src.kernel.name, src.kernel.sizes, parse_shape(args.shape), defaults)
    tile, k_unroll = _model_options(args)
    sys.stdout.write(explain(src, args.isa, sizes, args.cores, args.budget, args.platform, tile, k_unroll, args.compiler))
    return 0


def _model_options(args: argparse.Namespace) -> tuple[tuple[int, int] | None, int | None]:
    """``--tile RxC`` and ``--k-unroll U`` (schedule overrides; kgen.model.chooser)."""
    tile = None
    if getattr(args, "tile", None):
        parts = args.tile.lower().split("x")
        if len(parts) != 2 or not all(x.isdigit() and int(x) >= 1 for x in parts):
            raise KgenError(f"--tile: expected ROWSxCOLS with positive integers (e.g. 4x2), got '{args.tile}'")
        tile = (int(parts[0]), int(parts[1]))
    k_unroll = getattr(args, "k_unroll", None)
    if k_unroll is not None and k_unroll < 1:
        raise KgenError(f"--k-unroll must be >= 1, got {k_unroll}")
    return tile, k_unroll


class _ScheduleOption(argparse.Action):
    """Build/verify options that set kgen's schedule policy for the whole run (forked build workers
    inherit it): --allow-overflow, --tile, --k-unroll."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        from .model import auto, overflow

        setattr(namespace, self.dest, values if values is not None else True)
        if option_string == "--allow-overflow":
            overflow.set_policy(True)
        elif option_string == "--tile":
            try:
                auto.FORCED["tile"] = _model_options(argparse.Namespace(tile=values))[0]
            except KgenError as exc:
                parser.error(exc.message)
        elif option_string == "--k-unroll":
            auto.FORCED["k_unroll"] = int(values)


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-overflow", nargs=0, action=_ScheduleOption,
                   help="build kernels whose accumulators can overflow (wrap) at the given sizes")
    p.add_argument("--tile", action=_ScheduleOption, help="force the register tile, e.g. 4x2 (rows x cols)")
    p.add_argument("--k-unroll", type=int, action=_ScheduleOption, help="force the K-unroll factor")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kgen", description="Kernel generator for int8 tiny transformers on MCUs.")
    p.add_argument("--version", action="version", version=f"kgen {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="generate a kernel release")
    b.add_argument("ops", nargs="*", help="kernel names (default: the whole release)")
    b.add_argument("--isa", default="generic", help="generic | armv7em | xpulpv2 | all (the three releases)")
    b.add_argument("--out", help="output directory (default: generated/<isa>; with --isa all: the parent "
                                 "directory of the <isa>/ releases, default generated)")
    b.add_argument("--depfile", help="also write a make-style depfile: each release's manifest.json depends on "
                                     "every DSL, ISA, template and generator file it is made from")
    b.add_argument("-j", "--jobs", type=int, help="worker processes (default: all available cores; KGEN_JOBS)")
    b.add_argument("--time", action="store_true", help="print the build time to stderr")
    b.add_argument("--shape", help="specialise every selected kernel to these sizes, e.g. M=64,K=64,N=64")
    b.add_argument("--only", help="only kernels whose name contains this text")
    b.add_argument("--check", action="store_true", help="exit 1 if the output directory is out of date")
    b.add_argument("--dsl", action="append", help="extra DSL file with user kernels (repeatable)")
    b.add_argument("--variants", action="append", help="extra variant matrix (TOML, format of kernels/variants.toml)")
    _add_schedule_options(b)
    b.set_defaults(func=cmd_build)

    v = sub.add_parser("verify", help="build, run and compare one kernel bit-exactly with the reference")
    v.add_argument("op")
    v.add_argument("--isa", default="generic")
    v.add_argument("--shape", help="sizes, e.g. M=5,K=67,N=3 (unspecified sizes default to 16)")
    v.add_argument("--cpu", choices=CPUS, help="cortex-m4 | cortex-m7 (armv7em)")
    v.add_argument("--compiler", choices=["gcc", "clang"], help="default: both")
    v.add_argument("--opt", help="optimisation flag (default -O3 on MCUs, -O2 on the host)")
    v.add_argument("--cores", type=int, default=1, help="cluster cores (xpulpv2)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--no-sanitize", action="store_true", help="host: skip ASan/UBSan")
    v.add_argument("--dsl", action="append", help="extra DSL file with user kernels")
    _add_schedule_options(v)
    v.set_defaults(func=cmd_verify)

    be = sub.add_parser("bench", help="exact instruction counts and modelled cycles on QEMU / Spike")
    be.add_argument("--isa", required=True, help="armv7em | xpulpv2")
    be.add_argument("--cpu", choices=CPUS, help="cortex-m4 | cortex-m7 (armv7em; default both)")
    be.add_argument("--compiler", choices=["gcc", "clang"], help="default: both (armv7em)")
    be.add_argument("--opt", help="optimisation flag (default -O3)")
    be.add_argument("--cores", type=int, default=1, help="cluster cores (xpulpv2)")
    be.add_argument("--only", help="only kernels whose name contains this text")
    be.add_argument("--json", help="write the records to this file")
    be.add_argument("--dsl", action="append", help="extra DSL file with user kernels (repeatable)")
    be.add_argument("--variants", action="append", help="extra variant matrix with [[bench]] entries")
    be.add_argument("--no-sanitize", action="store_true", help=argparse.SUPPRESS)
    be.set_defaults(func=cmd_bench)

    mem = sub.add_parser("memory", help="MHSA activation-memory peaks, layer-wise vs depth-first")
    mem.add_argument("--json", help="write {config: {peak_layerwise_bytes, peak_depth_first_bytes, ...}}")
    mem.set_defaults(func=cmd_memory)

    c = sub.add_parser("check", help="parse and check DSL files")
    c.add_argument("files", nargs="+")
    c.add_argument("--print", action="store_true", help="print the parsed kernels back as DSL")
    c.set_defaults(func=cmd_check)

    ex = sub.add_parser("explain", help="the schedule kgen chooses for a kernel, why, and its cost formulas")
    ex.add_argument("op")
    ex.add_argument("--isa", required=True, help="armv7em | xpulpv2")
    ex.add_argument("--shape", help="sizes, e.g. M=64,K=64,N=64 (default: the release shape)")
    ex.add_argument("--budget", help="memory budget, e.g. L1=64k (platform memory names; L1 = the operand memory)")
    ex.add_argument("--platform", help="stm32l4 | stm32h7 | gap9 (default: per ISA; isa/platforms/)")
    ex.add_argument("--compiler", choices=["gcc", "clang"], help="toolchain model (default: gcc on armv7em)")
    ex.add_argument("--cores", type=int, default=1, help="cluster cores (xpulpv2)")
    ex.add_argument("--tile", help="force the register tile, e.g. 4x2 (rows x cols)")
    ex.add_argument("--k-unroll", type=int, help="force the K-unroll factor")
    ex.add_argument("--allow-overflow", nargs=0, action=_ScheduleOption,
                    help="explain kernels whose accumulators can overflow at the given sizes")
    ex.add_argument("--dsl", action="append", help="extra DSL file with user kernels")
    ex.set_defaults(func=cmd_explain)

    ls = sub.add_parser("list", help="list the kernels of the library")
    ls.add_argument("--dsl", action="append")
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KgenError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
