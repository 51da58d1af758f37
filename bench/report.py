"""BENCHMARKS.md and its charts from the figures bench/run.py collected.

Each metric becomes a table row per configuration: median, min-max, n, and the ratio of the
median to the peer's (QEMU microvm for micro-guests and Linux boot; QEMU q35 for virtio-blk
and virtio-net, whose QEMU runs use q35). One PNG per benchmark (gnuplot): bars at the
median, whiskers from min to max.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile

TITLES = {
    "start": "VMM start (micro-guest `hello`)",
    "memory": "Memory (micro-guest `idle`, read while the guest sits halted)",
    "exits": "Exit cost (micro-guest `exits`: 100,000 exits per kind, wall time / count)",
    "density": "Density (micro-guest `idle`, 128 MiB each, all started at once)",
    "linux": "Linux boot to init (stock-KVM host, Debian cloud kernel, 256 MiB)",
    "blk": "virtio-blk (stock-KVM host, O_DIRECT on /dev/vdb, no vhost)",
    "net": "virtio-net TCP throughput and request latency (stock-KVM host, netbench, no vhost)",
    "snap": "Snapshot, restore and migration downtime (micro-guests `count` and `dirty`)",
}
PEERS = {"blk": "QEMU q35 aio=threads", "net": "QEMU q35"}
QEMU_BLK = ("QEMU q35 aio=threads", "QEMU q35 aio=io_uring")


class Results:
    def __init__(self):
        self.samples = {}  # (bench, metric, unit) -> {config: [values]}
        self.higher = set()  # metrics where more is better
        self.notes = {}

    def add(self, bench, metric, unit, config, value, higher=False):
        self.samples.setdefault((bench, metric, unit), {}).setdefault(config, []).append(value)
        if higher:
            self.higher.add((bench, metric, unit))

    def save(self, path, cond, only):
        rows = [[b, m, u, cfg, vals, (b, m, u) in self.higher]
                for (b, m, u), cfgs in self.samples.items() for cfg, vals in cfgs.items()]
        with open(path, "w") as f:
            json.dump({"conditions": cond, "only": only, "samples": rows, "notes": self.notes},
                      f, indent=1)

    @staticmethod
    def load(path):
        with open(path) as f:
            data = json.load(f)
        res = Results()
        for b, m, u, cfg, vals, higher in data["samples"]:
            for v in vals:
                res.add(b, m, u, cfg, v, higher)
        res.notes = data["notes"]
        return res, data["conditions"], data["only"]

    @staticmethod
    def merge(paths):
        """One report from several runs: their figures side by side, and each condition that
        differs between runs listed per run."""
        res, conds, only = Results(), [], []
        for path in paths:
            r, cond, run_only = Results.load(path)
            for (b, m, u), cfgs in r.samples.items():
                for cfg, vals in cfgs.items():
                    for v in vals:
                        res.add(b, m, u, cfg, v, (b, m, u) in r.higher)
            for b, notes in r.notes.items():
                res.notes.setdefault(b, []).extend(notes)
            conds.append(cond)
            only += [b for b in run_only if b not in only]
        merged = {}
        for key in conds[0]:
            values = [c.get(key, "n/a") for c in conds]
            merged[key] = values[0] if len(set(values)) == 1 else \
                "; ".join(f"run {i + 1}: {v}" for i, v in enumerate(values))
        merged["benchmarks"] = ", ".join(only)
        return res, merged, only

    def note(self, bench, text):
        self.notes.setdefault(bench, []).append(text)

    def metrics(self, bench):
        return [k for k in self.samples if k[0] == bench]

    def median(self, bench, metric_prefix, config):
        for (b, metric, _), cfgs in self.samples.items():
            if b == bench and metric.startswith(metric_prefix) and cfgs.get(config):
                return statistics.median(cfgs[config])
        return None


def peer_for(bench, cfgs):
    if bench in PEERS:
        name = PEERS[bench]
        if name in cfgs:
            return name
        return next((c for c in cfgs if c.startswith("QEMU")), None)
    return "QEMU microvm" if "QEMU microvm" in cfgs else None


def fmt(v):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(res, bench):
    lines = ["| metric | configuration | median | min – max | n | ratio to peer |",
             "|---|---|---:|---:|---:|---:|"]
    for key in res.metrics(bench):
        _, metric, unit = key
        cfgs = res.samples[key]
        peer = peer_for(bench, cfgs)
        base = statistics.median(cfgs[peer]) if peer else None
        for cfg, vals in cfgs.items():
            med = statistics.median(vals)
            ratio = f"{med / base:.2f}× {peer}" if base and cfg != peer else ""
            lines.append(f"| {metric} | {cfg} | {fmt(med)} {unit} | {fmt(min(vals))} – "
                         f"{fmt(max(vals))} | {len(vals)} | {ratio} |")
    return "\n".join(lines)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def chart(res, bench, charts_dir):
    """One PNG: a panel per metric, a bar per configuration. None without gnuplot."""
    if not shutil.which("gnuplot"):
        return None
    keys = res.metrics(bench)
    if not keys:
        return None
    path = os.path.join(charts_dir, f"{bench}.png")
    cols = min(len(keys), 2)
    rows = (len(keys) + cols - 1) // cols
    with tempfile.TemporaryDirectory() as tmp:
        script = [f"set terminal pngcairo size {560 * cols},{300 * rows} font 'sans,9'",
                  f"set output '{path}'", f"set multiplot layout {rows},{cols}",
                  "set style fill solid 0.6 border -1", "set boxwidth 0.6", "set grid ytics",
                  "set yrange [0:*]", "unset key", "set xtics noenhanced",
                  "set title noenhanced"]
        for i, key in enumerate(keys):
            _, metric, unit = key
            data = os.path.join(tmp, f"{i}.dat")
            with open(data, "w") as f:
                for j, (cfg, vals) in enumerate(res.samples[key].items()):
                    f.write(f'{j} "{cfg}" {statistics.median(vals)} {min(vals)} {max(vals)}\n')
            meds = [statistics.median(v) for v in res.samples[key].values()]
            lows = [min(v) for v in res.samples[key].values()]
            if min(meds) > 0 and max(meds) / min(meds) > 30:
                # kiln next to a 100x slower bar would be invisible on a linear axis
                script += ["set logscale y", f"set yrange [{min(lows) / 2}:*]",
                           f"set title '{metric} ({unit}, log scale)'"]
            else:
                script += ["unset logscale y", "set yrange [0:*]",
                           f"set title '{metric} ({unit})'"]
            script += [f"plot '{data}' using 1:3:xtic(2) with boxes lc rgb '#4a7ab0', "
                       f"'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0"]
        script.append("unset multiplot")
        gp = os.path.join(tmp, "chart.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        subprocess.run(["gnuplot", gp], check=True)
    return path


def ratio(res, bench, metric, config, peer):
    k, q = res.median(bench, metric, config), res.median(bench, metric, peer)
    return k / q if k is not None and q else None


def targets(res):
    """(target, verdict) rows for issue 7's targets, from this run's medians."""
    rows = []

    def add(target, value, ok, shown):
        if value is None:
            rows.append((target, "not measured in this run"))
        else:
            rows.append((target, f"{'**met**' if ok(value) else '**missed**'}: {shown(value)}"))

    add("start to first guest line ≤ 0.25× QEMU microvm",
        ratio(res, "start", "start to first guest line", "kiln", "QEMU microvm"),
        lambda r: r <= 0.25, lambda r: f"{r:.2f}×")
    add("peak RSS with a 256 MiB micro-guest ≤ 2 MiB",
        res.median("memory", "peak RSS, 256 MiB", "kiln"),
        lambda v: v <= 2.0, lambda v: f"{v:.2f} MiB")
    cpu = {}
    for cfg in ("kiln", "bare KVM_RUN loop"):
        user = res.median("exits", "VMM user CPU", cfg)
        sys_ = res.median("exits", "VMM system CPU", cfg)
        cpu[cfg] = user + sys_ if user is not None and sys_ is not None else None
    add("port-I/O exit within 5% of the bare KVM_RUN loop: CPU time per exit",
        cpu["kiln"] / cpu["bare KVM_RUN loop"] if cpu["kiln"] and cpu["bare KVM_RUN loop"]
        else None, lambda r: r <= 1.05, lambda r: f"{(r - 1) * 100:+.1f}%")
    add("port-I/O exit within 5% of the bare KVM_RUN loop: wall time per exit (mostly waiting "
        "for a CPU on a shared machine)",
        ratio(res, "exits", "port-I/O", "kiln", "bare KVM_RUN loop"),
        lambda r: r <= 1.05, lambda r: f"{(r - 1) * 100:+.1f}%")
    add("100 concurrent micro-guests", res.median("density", "100 VMs: time", "kiln"),
        lambda v: True, lambda v: f"all up in {v:.1f} s")
    for name in ("kiln bzImage", "kiln PVH"):
        add(f"Linux boot to init ({name}) ≤ 0.7× QEMU microvm",
            ratio(res, "linux", "VMM start to guest /init", name, "QEMU microvm"),
            lambda r: r <= 0.7, lambda r: f"{r:.2f}×")
    for metric in ("sequential read", "sequential write", "4 KiB random read"):
        # Against whichever of QEMU's two engines did better on this metric in this run.
        peers = [(res.median("blk", metric, p), p) for p in QEMU_BLK]
        best = max((p for p in peers if p[0] is not None), default=(None, None))[1]
        add(f"virtio-blk {metric} ≥ 1.2× QEMU (kiln's default, io_uring, against QEMU's "
            f"faster engine{': ' + best[len('QEMU q35 '):] if best else ''})",
            ratio(res, "blk", metric, "kiln default", best) if best else None,
            lambda r: r >= 1.2, lambda r: f"{r:.2f}×")
    for metric in ("TCP tap guest->host", "TCP tap host->guest", "TCP user guest->host",
                   "TCP user host->guest"):
        add(f"virtio-net {metric[4:]} ≥ 1.2× QEMU", ratio(res, "net", metric, "kiln", "QEMU q35"),
            lambda r: r >= 1.2, lambda r: f"{r:.2f}×")
    # Latency mirrors the throughput target: 1.2× better is a round trip ≤ QEMU's / 1.2.
    for net in ("tap", "user"):
        add(f"virtio-net {net} request latency ≤ QEMU / 1.2 (kiln/QEMU ≤ 0.83×)",
            ratio(res, "net", f"TCP request latency, {net}", "kiln", "QEMU q35"),
            lambda r: r <= 1 / 1.2, lambda r: f"{r:.2f}×")
    return rows


def write(res, cond, only, out_path, charts_dir):
    os.makedirs(charts_dir, exist_ok=True)
    rel = os.path.relpath(charts_dir, os.path.dirname(os.path.abspath(out_path)))
    md = ["# kiln benchmarks, side by side with QEMU", "",
          "Generated by `bench/run.py` (see `bench/README.md`). Within each benchmark the "
          "VMM configurations ran in the same run, alternating repetition by repetition; "
          "where the report merges several runs (`--from-json`), Conditions lists each. "
          "Medians, the spread (min – max over the repetitions) and the ratio "
          "of the median to the peer (QEMU microvm, or QEMU q35 where the QEMU run is q35). "
          "Lower is better except for throughput and IOPS.", "", "## Conditions", ""]
    md += [f"- **{k}**: {v}" for k, v in cond.items()]
    md += ["", "## Targets (issue 7)", "", "| target | this run |", "|---|---|"]
    md += [f"| {t} | {v} |" for t, v in targets(res)]
    for bench in list(TITLES):
        md += ["", f"## {TITLES[bench]}", ""]
        if bench not in only:
            md.append("Not run this time (`--only`/`--quick`); the previous figures are not "
                      "carried over.")
            continue
        if res.metrics(bench):
            md.append(table(res, bench))
            png = chart(res, bench, charts_dir)
            if png:
                md += ["", f"![{bench}]({rel}/{os.path.basename(png)})"]
        for n in res.notes.get(bench, []):
            md += ["", f"Note: {n}"]
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            md += ["", f.read().rstrip()]
    with open(out_path, "w") as f:
        f.write("\n".join(md) + "\n")
