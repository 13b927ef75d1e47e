//! Results: markdown table, JSON (every sample), SVG bar chart, plus small helpers (.npy writer,
//! date, machine name).
use crate::roofline::Roofline;
use crate::{PeerResult, Row, Stats};
use serde_json::{Value, json};
use std::fmt::Write as _;

pub struct Meta {
    pub mode: String,
    pub machine: String,
    pub date: String,
    pub isa: String,
    pub ort_version: Option<String>,
    pub rten_version: Option<String>,
    pub settings: String,
    pub failures: Vec<String>,
}

/// `model name` from /proc/cpuinfo (what `lscpu` shows), with the core count.
pub fn machine() -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{name}, {cores} cores")
}

/// UTC date as YYYY-MM-DD (civil-from-days, no dependency).
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}

fn fmt_t(ms: f64) -> String {
    if ms < 0.001 {
        format!("{:.0} ns", ms * 1e6)
    } else if ms < 0.1 {
        format!("{:.2} µs", ms * 1e3)
    } else if ms < 1.0 {
        format!("{:.0} µs", ms * 1e3)
    } else {
        format!("{ms:.2} ms")
    }
}

fn fmt_stats(s: &Stats) -> String {
    format!("{} [{}–{}]", fmt_t(s.median), fmt_t(s.min), fmt_t(s.max))
}

fn peer_cell(p: &PeerResult) -> String {
    match p {
        PeerResult::Ok(s) => fmt_t(s.median),
        PeerResult::Skipped => "skipped".into(),
        PeerResult::Failed(_) => "**failed**".into(),
    }
}

/// kiln time / peer time (< 1: kiln is faster).
fn ratio(kiln: &Stats, p: &PeerResult) -> Option<f64> {
    match p {
        PeerResult::Ok(s) => Some(kiln.median / s.median),
        _ => None,
    }
}

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| {
        if r < 1.0 {
            format!("**{r:.2}**")
        } else {
            format!("{r:.2}")
        }
    })
}

/// Roofline position of a time: (percent, what) — compute peak for M ≥ 16, bandwidth for GEMV.
pub fn roof_of(row: &Row, ms: f64, roof: &Roofline, isa: kiln::Isa) -> Option<(f64, &'static str)> {
    let macs = row.macs?;
    let bytes = row.weight_bytes?;
    let m = macs / bytes;
    if m == 1 {
        let bw = roof.bw_for(row.threads)?;
        Some((bytes as f64 / (ms * 1e-3) / 1e9 / bw * 100.0, "BW"))
    } else {
        let peak = roof.peak_for(isa, row.threads)?;
        Some((macs as f64 / (ms * 1e-3) / 1e9 / peak * 100.0, "peak"))
    }
}

fn roof_cell(row: &Row, roof: &Roofline, isa: kiln::Isa) -> String {
    match roof_of(row, row.kiln.median, roof, isa) {
        Some((p, what)) => {
            let rate = if what == "BW" {
                format!(
                    "{:.0} GB/s",
                    row.weight_bytes.unwrap() as f64 / row.kiln.median / 1e6
                )
            } else {
                format!(
                    "{:.0} GMAC/s",
                    row.macs.unwrap() as f64 / row.kiln.median / 1e6
                )
            };
            format!("{p:.0} % {what} ({rate})")
        }
        None => "".into(),
    }
}

/// One progress line for stderr.
pub fn line(row: &Row, roof: &Roofline, isa: kiln::Isa) -> String {
    format!(
        "{:<22} {}t  kiln {:<28} ort {:<10} rten {:<10} kiln/ort {} kiln/rten {} {}{}",
        row.case,
        row.threads,
        fmt_stats(&row.kiln),
        peer_cell(&row.ort),
        peer_cell(&row.rten),
        ratio(&row.kiln, &row.ort).map_or("–".into(), |r| format!("{r:.2}")),
        ratio(&row.kiln, &row.rten).map_or("–".into(), |r| format!("{r:.2}")),
        roof_cell(row, roof, isa),
        row.check.as_deref().unwrap_or("")
    )
}

pub fn markdown(meta: &Meta, rows: &[Row], roof: &Roofline, isa: kiln::Isa) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kiln-bench `{}` — {} — {} — kiln ISA {} — onnxruntime {} — RTen {}\n",
        meta.mode,
        meta.date,
        meta.machine,
        meta.isa,
        meta.ort_version.as_deref().unwrap_or("skipped"),
        meta.rten_version.as_deref().unwrap_or("skipped"),
    );
    // Single-op runs have no roofline column but an output check against onnxruntime.
    let checks = rows.iter().any(|r| r.check.is_some());
    let last = if checks {
        "output vs ORT"
    } else {
        "kiln %peak"
    };
    let _ = writeln!(
        s,
        "| case | threads | kiln median [min–max] | ORT median | RTen median | kiln/ORT | kiln/RTen | {last} |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in rows {
        let last = if checks {
            r.check.clone().unwrap_or_default()
        } else {
            roof_cell(r, roof, isa)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.case,
            r.threads,
            fmt_stats(&r.kiln),
            peer_cell(&r.ort),
            peer_cell(&r.rten),
            ratio_cell(ratio(&r.kiln, &r.ort)),
            ratio_cell(ratio(&r.kiln, &r.rten)),
            last
        );
    }
    let mt: String = roof
        .compute_mt
        .iter()
        .map(|(t, p)| format!("; kiln's ISA loop on {t} threads at once: {p:.0} GMAC/s in total"))
        .collect();
    let bw = roof
        .read_bw
        .iter()
        .map(|(t, b)| {
            format!(
                "{b:.1} GB/s with {t} thread{}",
                if *t > 1 { "s" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if checks {
        // Single-op runs: no roofline was measured.
        let _ = writeln!(
            s,
            "\nkiln/peer is a ratio of medians (< 1, in bold: kiln is faster). Output vs ORT: \
             `bit-identical` when kiln's output has the same bits as onnxruntime's (a hash of \
             every element's bits), `≈` when only the sums agree (to 1e-5 of Σ|y|: a different \
             rounding order). {}.",
            meta.settings
        );
    } else {
        let _ = writeln!(
            s,
            "\nkiln/peer is a ratio of medians (< 1, in bold: kiln is faster). Roofline (best of \
             the microbenchmark trials): VPDPBUSD zmm {} GMAC/s per core, AVX-VNNI ymm {}, AVX2 \
             maddubs {}{mt}; read bandwidth {bw} (256 MiB buffer). %peak: GEMM cases with M ≥ \
             16 against the peak of kiln's ISA on that many threads; M = 1 as int8 weight bytes \
             per second against the read bandwidth (weights that fit in cache can exceed \
             100 %). {}.",
            opt(roof.vnni512),
            opt(roof.avxvnni),
            opt(roof.avx2),
            meta.settings
        );
    }
    if let Some(k) = rows.iter().find_map(|r| r.kernel) {
        let _ = writeln!(s, "kiln GEMM kernel: `{k}`.");
    }
    if !meta.failures.is_empty() {
        let _ = writeln!(s, "\n**Failures:**\n");
        for f in &meta.failures {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

fn stats_json(s: &Stats) -> Value {
    json!({"median_ms": s.median, "min_ms": s.min, "max_ms": s.max,
           "inner": s.inner, "samples_ms": s.samples})
}

fn peer_json(p: &PeerResult) -> Value {
    match p {
        PeerResult::Ok(s) => stats_json(s),
        PeerResult::Skipped => json!({"skipped": true}),
        PeerResult::Failed(e) => json!({"error": e}),
    }
}

pub fn json(meta: &Meta, rows: &[Row], roof: &Roofline, isa: kiln::Isa) -> String {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let roof_of_peer = |p: &PeerResult| match p {
                PeerResult::Ok(s) => roof_of(r, s.median, roof, isa).map(|(p, _)| p),
                _ => None,
            };
            json!({
                "case": r.case, "threads": r.threads,
                "macs": r.macs, "weight_bytes": r.weight_bytes, "kernel": r.kernel,
                "kiln": stats_json(&r.kiln),
                "onnxruntime": peer_json(&r.ort),
                "rten": peer_json(&r.rten),
                "kiln_over_ort": ratio(&r.kiln, &r.ort),
                "kiln_over_rten": ratio(&r.kiln, &r.rten),
                "output_vs_onnxruntime": r.check,
                "roofline_percent": {
                    "kind": roof_of(r, r.kiln.median, roof, isa).map(|(_, w)| w),
                    "kiln": roof_of(r, r.kiln.median, roof, isa).map(|(p, _)| p),
                    "onnxruntime": roof_of_peer(&r.ort),
                    "rten": roof_of_peer(&r.rten),
                },
            })
        })
        .collect();
    let v = json!({
        "mode": meta.mode, "date": meta.date, "machine": meta.machine, "kiln_isa": meta.isa,
        "onnxruntime": meta.ort_version, "rten": meta.rten_version, "settings": meta.settings,
        "roofline": {
            "vpdpbusd_zmm_gmacs_per_core": roof.vnni512,
            "avxvnni_ymm_gmacs_per_core": roof.avxvnni,
            "avx2_maddubs_gmacs_per_core": roof.avx2,
            "kiln_isa_gmacs_multithread": roof.compute_mt.iter().map(|(t, p)| json!({"threads": t, "gmacs": p})).collect::<Vec<_>>(),
            "read_gbs": roof.read_bw.iter().map(|(t, b)| json!({"threads": t, "gbs": b})).collect::<Vec<_>>(),
        },
        "rows": rows,
        "failures": meta.failures,
    });
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Horizontal grouped bars: speed relative to onnxruntime (ORT time / peer time, log2 axis),
/// kiln and RTen per case and thread count; the line at 1× is onnxruntime.
pub fn svg(meta: &Meta, rows: &[Row]) -> String {
    let (left, right, top, bar, gap) = (210.0, 40.0, 56.0, 9.0, 8.0);
    let width = 900.0;
    let plot_w = width - left - right;
    let rows_h = rows.len() as f64 * (2.0 * bar + gap);
    let height = top + rows_h + 46.0;
    // log2 range covering every ratio, at least 1/4 … 4.
    let speed = |r: &Row, p: &PeerResult| match (&r.ort, p) {
        (PeerResult::Ok(o), PeerResult::Ok(s)) => Some(o.median / s.median),
        _ => None,
    };
    let kiln_speed = |r: &Row| match &r.ort {
        PeerResult::Ok(o) => Some(o.median / r.kiln.median),
        _ => None,
    };
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|r| [kiln_speed(r), speed(r, &r.rten)])
        .flatten()
        .collect();
    let lo = all.iter().fold(0.25f64, |a, &b| a.min(b)).log2().floor();
    let hi = all.iter().fold(4.0f64, |a, &b| a.max(b)).log2().ceil();
    let x = |v: f64| left + (v.log2() - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18" font-size="13" font-weight="bold">Speed relative to onnxruntime (onnxruntime time / time; right of 1× is faster)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="34" fill="#555">{} — {} — kiln-bench {}</text>"##,
        esc(&meta.date),
        esc(&meta.machine),
        esc(&meta.mode)
    );
    let bottom = top + rows_h;
    let mut e = lo as i32;
    while e <= hi as i32 {
        let v = 2f64.powi(e);
        let xv = x(v);
        let label = if e >= 0 {
            format!("{}×", v as u64)
        } else {
            format!("1/{}×", (1.0 / v) as u64)
        };
        let (stroke, w) = if e == 0 { ("#000", 1.5) } else { ("#ddd", 1.0) };
        let _ = writeln!(
            s,
            r##"<line x1="{xv:.1}" y1="{top}" x2="{xv:.1}" y2="{bottom}" stroke="{stroke}" stroke-width="{w}"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            bottom + 14.0
        );
        e += 1;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * (2.0 * bar + gap);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} · {}t</text>"#,
            left - 6.0,
            y + bar + 4.0,
            esc(&r.case),
            r.threads
        );
        for (j, (v, color)) in [(kiln_speed(r), "#d9480f"), (speed(r, &r.rten), "#1c7ed6")]
            .into_iter()
            .enumerate()
        {
            if let Some(v) = v {
                let yb = y + j as f64 * bar;
                let (x0, x1) = (x(1.0), x(v));
                let (a, b) = if x1 >= x0 { (x0, x1) } else { (x1, x0) };
                let _ = writeln!(
                    s,
                    r##"<rect x="{a:.1}" y="{yb:.1}" width="{:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="9" fill="#333">{v:.2}</text>"##,
                    (b - a).max(0.5),
                    bar - 1.0,
                    b + 3.0,
                    yb + bar - 2.0
                );
            }
        }
    }
    let ly = bottom + 32.0;
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{:.1}" width="10" height="10" fill="#d9480f"/><text x="{:.1}" y="{ly}">kiln</text><rect x="{:.1}" y="{:.1}" width="10" height="10" fill="#1c7ed6"/><text x="{:.1}" y="{ly}">RTen</text><text x="{:.1}" y="{ly}" fill="#555">(onnxruntime = 1×)</text>"##,
        ly - 9.0,
        left + 14.0,
        left + 60.0,
        ly - 9.0,
        left + 74.0,
        left + 120.0
    );
    s.push_str("</svg>\n");
    s
}

/// A version 1.0 .npy file: C order, little-endian `descr` ("<f4", "<i8").
pub fn npy(descr: &str, shape: &[usize], data: impl Iterator<Item = u8>) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data);
    out
}
