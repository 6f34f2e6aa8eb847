//! Charts drawn on the server as inline SVG: no script, no network, readable without colour
//! (each series has its own pattern and a text legend, and every chart has its table).

use std::fmt::Write;

/// One series of a stacked bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    /// CSS class giving its colour and pattern (`s-success`, `s-sent`, `s-failed`, `s-spend`).
    pub class: &'a str,
    pub values: Vec<f64>,
}

/// Stacked vertical bars, one per label, as an accessible SVG document fragment.
pub fn stacked_bars(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let width = 640.0_f64;
    let height = 220.0_f64;
    let (left, bottom, top) = (44.0, 28.0, 10.0);
    let plot_height = height - bottom - top;
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let slot = (width - left - 8.0) / labels.len().max(1) as f64;
    let bar = (slot * 0.7).min(48.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(title)
    );
    svg.push_str(concat!(
        r#"<defs><pattern id="p-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="2" height="6" fill="currentColor" opacity=".35"/></pattern>"#,
        r#"<pattern id="p-dots" width="6" height="6" patternUnits="userSpaceOnUse"><circle cx="3" cy="3" r="1.2" fill="currentColor" opacity=".45"/></pattern></defs>"#
    ));
    for step in 0..=4 {
        let value = max * f64::from(step) / 4.0;
        let y = top + plot_height - plot_height * f64::from(step) / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            width - 4.0,
            left - 6.0,
            y + 4.0,
            short(value)
        );
    }
    for (i, label) in labels.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_height;
        for s in series {
            let value = s.values.get(i).copied().unwrap_or(0.0);
            if value <= 0.0 {
                continue;
            }
            let h = plot_height * value / max;
            y -= h;
            let _ = write!(
                svg,
                r#"<g class="{}"><rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}"/><rect class="pattern" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}"/><title>{}: {} {}</title></g>"#,
                s.class,
                escape(label),
                short(value),
                escape(s.name)
            );
        }
        let every = (labels.len() / 8).max(1);
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                height - 8.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A number as an axis shows it: whole numbers without decimals, small ones with two.
fn short(value: f64) -> String {
    if (value - value.round()).abs() < 0.005 {
        format!("{:.0}", value.round())
    } else if value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_escapes_its_labels_and_draws_one_bar_per_value() {
        let svg = stacked_bars(
            "t<",
            &["a&b".to_string(), "c".to_string()],
            &[Series {
                name: "ok",
                class: "s-success",
                values: vec![1.0, 2.0],
            }],
        );
        assert!(svg.contains("aria-label=\"t&lt;\""));
        assert!(svg.contains("a&amp;b"));
        assert_eq!(svg.matches("<title>").count(), 2);
    }
}
