//! Decode the hub's QR codes back to text (with rqrr, a QR decoder), so a
//! test checks what a phone camera would read, not how the code was made.
#![allow(dead_code)]

fn decode_bitmap(w: usize, h: usize, dark: impl Fn(usize, usize) -> bool) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_bitmap(w, h, dark);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    let (_, content) = grids[0].decode().expect("the QR code decodes");
    content
}

/// The texts of the QR codes in `html`, in page order (inline SVGs the hub
/// drew: a background rect and one path of `M x y h w v h H x V y` squares).
pub fn decode_svgs(html: &str) -> Vec<String> {
    html.match_indices("<svg")
        .map(|(i, _)| decode_svg(&html[i..]))
        .collect()
}

/// The text of the first QR code in `html`.
pub fn decode_svg(html: &str) -> String {
    let svg = &html[html.find("<svg").expect("an inline SVG")..];
    let attr = |name: &str| -> usize {
        let key = format!(" {name}=\"");
        let start = svg.find(&key).unwrap() + key.len();
        let end = svg[start..].find('"').unwrap() + start;
        svg[start..end].parse().unwrap()
    };
    let (w, h) = (attr("width"), attr("height"));
    let d_start = svg.find(" d=\"").unwrap() + 4;
    let d = &svg[d_start..d_start + svg[d_start..].find('"').unwrap()];
    let mut px = vec![false; w * h];
    for square in d.split('M').filter(|s| !s.is_empty()) {
        // "{left} {top}h{width}v{height}H{left}V{top}"
        let nums: Vec<usize> = square
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let (left, top, width, height) = (nums[0], nums[1], nums[2], nums[3]);
        for y in top..top + height {
            for x in left..left + width {
                px[y * w + x] = true;
            }
        }
    }
    decode_bitmap(w, h, |x, y| px[y * w + x])
}

/// The text of a QR code printed in a terminal with half blocks (each
/// character is one module wide and two high; `█▀▄` are dark).
pub fn decode_text(text: &str) -> String {
    let rows: Vec<Vec<char>> = text
        .lines()
        .filter(|l| l.chars().any(|c| "█▀▄".contains(c)))
        .map(|l| l.chars().collect())
        .collect();
    let w = rows.iter().map(Vec::len).max().unwrap();
    let h = rows.len() * 2;
    // Scale each module to 4×4 pixels for the detector, with a margin.
    let s = 4;
    let dark = |x: usize, y: usize| {
        let (mx, my) = (x / s, y / s);
        let Some(c) = rows.get(my / 2).and_then(|r| r.get(mx)) else {
            return false;
        };
        matches!((c, my % 2), ('█', _) | ('▀', 0) | ('▄', 1))
    };
    decode_bitmap(w * s, h * s, dark)
}
