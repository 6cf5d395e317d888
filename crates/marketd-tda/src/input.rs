//! Input parsers: point clouds, full/lower/upper distance matrices, sparse triplets (text,
//! comma or whitespace separated), DIPHA binary distance matrices and Ripser's float32 binary
//! lower triangle. Every malformed input is reported as an [`Error`] naming where it is.

use crate::error::Error;

/// Input formats, spelled as Ripser's `--format` values.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One point per line, coordinates separated by commas or whitespace.
    PointCloud,
    /// Full square distance matrix (the lower triangle is used).
    Distance,
    /// Lower-triangular distance matrix (row i holds d(i,0..i)).
    LowerDistance,
    /// Upper-triangular distance matrix (row i holds d(i,i+1..n)).
    UpperDistance,
    /// `i j d` triplets, one per line.
    Sparse,
    /// DIPHA binary distance matrix.
    Dipha,
    /// Ripser's binary format: little-endian float32 lower triangle.
    Binary,
}

/// Parsed input data.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `n` points of dimension `dim`, coordinates row-major.
    PointCloud {
        n: usize,
        dim: usize,
        coords: Vec<f32>,
    },
    /// Dense distances as a compressed lower triangle: d(i,j) for i>j at i(i-1)/2+j.
    LowerTriangle { n: usize, values: Vec<f32> },
    /// Sparse distances: undirected edges (i, j, d) over `n` vertices.
    Sparse {
        n: usize,
        edges: Vec<(u32, u32, f32)>,
    },
}

/// Upper bounds protecting against absurd allocations.
pub const MAX_POINTS: usize = 1 << 20;
/// Largest dense matrix size accepted (number of vertices).
pub const MAX_DENSE_POINTS: usize = 1 << 16;

impl Data {
    /// Number of vertices.
    pub fn len(&self) -> usize {
        match self {
            Data::PointCloud { n, .. } | Data::LowerTriangle { n, .. } | Data::Sparse { n, .. } => {
                *n
            }
        }
    }

    /// Whether there are no vertices.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds a point cloud from rows (all of equal length).
    pub fn from_points<R: AsRef<[f64]>>(rows: &[R]) -> Result<Self, Error> {
        let dim = rows.first().map(|r| r.as_ref().len()).unwrap_or(0);
        let mut coords = Vec::with_capacity(rows.len() * dim);
        for (i, r) in rows.iter().enumerate() {
            let r = sized_row(r.as_ref(), dim, || format!("point {i}"), "coordinates")?;
            for (j, &x) in r.iter().enumerate() {
                if !x.is_finite() {
                    return Err(Error::invalid(format!(
                        "point {i} coordinate {j} is not finite"
                    )));
                }
                coords.push(x as f32);
            }
        }
        Ok(Data::PointCloud {
            n: rows.len(),
            dim,
            coords,
        })
    }

    /// Builds dense distances from a full square matrix (the lower triangle is used).
    pub fn from_distance_matrix<R: AsRef<[f64]>>(rows: &[R]) -> Result<Self, Error> {
        let n = rows.len();
        let mut values = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        for (i, r) in rows.iter().enumerate() {
            let r = sized_row(r.as_ref(), n, || format!("row {i}"), "entries")?;
            for (j, &x) in r[..i].iter().enumerate() {
                check_distance(x).map_err(|m| Error::invalid(format!("entry ({i},{j}): {m}")))?;
                values.push(x as f32);
            }
        }
        Ok(Data::LowerTriangle { n, values })
    }
}

fn check_distance(x: f64) -> Result<(), &'static str> {
    if x.is_nan() {
        Err("distance is NaN")
    } else if x < 0.0 {
        Err("distance is negative")
    } else {
        Ok(())
    }
}

/// A numeric token with its position (1-based line and column).
struct Tok {
    v: f64,
    col: usize,
}

fn tokenize_line(line: &str, lineno: usize, int_ok_only: bool) -> Result<Vec<Tok>, Error> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b',' || c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        let s = &line[start..i];
        let v: f64 = if int_ok_only {
            s.parse::<u64>().map(|x| x as f64).map_err(|_| {
                Error::parse(
                    lineno,
                    start + 1,
                    format!("expected a vertex index, found {s:?}"),
                )
            })?
        } else {
            // parse as f32 first (as Ripser's float reader), keep the f32 value
            match s.parse::<f32>() {
                Ok(x) => x as f64,
                Err(_) => {
                    return Err(Error::parse(
                        lineno,
                        start + 1,
                        format!("expected a number, found {s:?}"),
                    ));
                }
            }
        };
        out.push(Tok { v, col: start + 1 });
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        let upto = &bytes[..e.valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = upto.len()
            - upto
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|p| p + 1)
                .unwrap_or(0)
            + 1;
        Error::parse(line, col, "invalid UTF-8".to_string())
    })
}

/// Non-empty lines as (line number, tokens). Lines starting with '#' are comments.
fn rows(bytes: &[u8]) -> Result<Vec<(usize, Vec<Tok>)>, Error> {
    let s = text(bytes)?;
    let mut out = Vec::new();
    for (k, line) in s.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let toks = tokenize_line(line, k + 1, false)?;
        if !toks.is_empty() {
            out.push((k + 1, toks));
        }
    }
    Ok(out)
}

/// A row of `want` values passes; otherwise the error reads "<name> has <count> <unit>,
/// expected <want>".
fn sized_row<'a>(
    r: &'a [f64],
    want: usize,
    name: impl FnOnce() -> String,
    unit: &str,
) -> Result<&'a [f64], Error> {
    if r.len() == want {
        return Ok(r);
    }
    Err(Error::invalid(format!(
        "{} has {} {unit}, expected {want}",
        name(),
        r.len()
    )))
}

/// A row of `want` tokens passes; otherwise the error points at the first surplus token (or
/// column 1) and reads "ragged row: <count> <what>".
fn check_row_len(
    line: usize,
    toks: &[Tok],
    want: usize,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    if toks.len() == want {
        return Ok(());
    }
    let col = toks.get(want).map(|t| t.col).unwrap_or(1);
    Err(Error::parse(
        line,
        col,
        format!("ragged row: {} {}", toks.len(), what()),
    ))
}

fn dist_tok(t: &Tok, line: usize) -> Result<f32, Error> {
    check_distance(t.v).map_err(|m| Error::parse(line, t.col, m.to_string()))?;
    Ok(t.v as f32)
}

fn triangular_n(count: usize) -> Option<usize> {
    // n(n-1)/2 == count
    let n = ((1.0 + (1.0 + 8.0 * count as f64).sqrt()) / 2.0).round() as usize;
    for m in n.saturating_sub(2)..=n + 2 {
        if m * m.saturating_sub(1) / 2 == count {
            return Some(m.max(if count == 0 { 1 } else { 0 }));
        }
    }
    None
}

fn check_dense_size(n: usize) -> Result<(), Error> {
    if n > MAX_DENSE_POINTS {
        return Err(Error::TooLarge(format!(
            "{n} points in a dense distance matrix (at most {MAX_DENSE_POINTS})"
        )));
    }
    Ok(())
}

/// Parses `bytes` in the given format.
pub fn parse(bytes: &[u8], format: Format) -> Result<Data, Error> {
    match format {
        Format::PointCloud => parse_point_cloud(bytes),
        Format::Distance => parse_full(bytes),
        Format::LowerDistance => parse_lower(bytes),
        Format::UpperDistance => parse_upper(bytes),
        Format::Sparse => parse_sparse(bytes),
        Format::Dipha => parse_dipha(bytes),
        Format::Binary => parse_binary(bytes),
    }
}

fn parse_point_cloud(bytes: &[u8]) -> Result<Data, Error> {
    let rows = rows(bytes)?;
    let dim = rows.first().map(|r| r.1.len()).unwrap_or(0);
    if rows.len() > MAX_POINTS {
        return Err(Error::TooLarge(format!(
            "{} points (at most {MAX_POINTS})",
            rows.len()
        )));
    }
    let mut coords = Vec::with_capacity(rows.len() * dim);
    for (line, toks) in &rows {
        check_row_len(*line, toks, dim, || {
            format!("coordinates, expected {dim} as in the first row")
        })?;
        for t in toks {
            if !t.v.is_finite() {
                return Err(Error::parse(
                    *line,
                    t.col,
                    "coordinate is not finite".to_string(),
                ));
            }
            coords.push(t.v as f32);
        }
    }
    check_dense_size(rows.len())?;
    Ok(Data::PointCloud {
        n: rows.len(),
        dim,
        coords,
    })
}

fn parse_full(bytes: &[u8]) -> Result<Data, Error> {
    let rows = rows(bytes)?;
    let n = rows.len();
    check_dense_size(n)?;
    let mut values = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for (i, (line, toks)) in rows.iter().enumerate() {
        check_row_len(*line, toks, n, || {
            format!("entries in a {n}x{n} distance matrix")
        })?;
        for (j, t) in toks.iter().enumerate() {
            let d = dist_tok(t, *line)?;
            if j < i {
                values.push(d);
            }
        }
    }
    Ok(Data::LowerTriangle { n, values })
}

fn parse_lower(bytes: &[u8]) -> Result<Data, Error> {
    let rows = rows(bytes)?;
    let multi = rows.len() > 1;
    let mut values = Vec::new();
    for (r, (line, toks)) in rows.iter().enumerate() {
        if multi {
            check_row_len(*line, toks, r + 1, || {
                format!(
                    "entries, expected {} in row {} of a lower-triangular matrix",
                    r + 1,
                    r + 1
                )
            })?;
        }
        for t in toks {
            values.push(dist_tok(t, *line)?);
        }
    }
    let n = triangular_n(values.len()).ok_or_else(|| {
        let line = rows.last().map(|r| r.0).unwrap_or(1);
        Error::parse(
            line,
            1,
            format!("{} entries do not form a lower triangle", values.len()),
        )
    })?;
    check_dense_size(n)?;
    let n = if values.is_empty() && rows.is_empty() {
        0
    } else {
        n
    };
    Ok(Data::LowerTriangle { n, values })
}

fn parse_upper(bytes: &[u8]) -> Result<Data, Error> {
    let rows = rows(bytes)?;
    let count: usize = rows.iter().map(|r| r.1.len()).sum();
    let n = triangular_n(count).ok_or_else(|| {
        let line = rows.last().map(|r| r.0).unwrap_or(1);
        Error::parse(
            line,
            1,
            format!("{count} entries do not form an upper triangle"),
        )
    })?;
    check_dense_size(n)?;
    let multi = rows.len() > 1;
    let mut flat = Vec::with_capacity(count);
    for (r, (line, toks)) in rows.iter().enumerate() {
        let want = n.saturating_sub(1 + r);
        if multi {
            check_row_len(*line, toks, want, || {
                format!(
                    "entries, expected {want} in row {} of an upper-triangular matrix",
                    r + 1
                )
            })?;
        }
        for t in toks {
            flat.push(dist_tok(t, *line)?);
        }
    }
    // upper row-major: (i, j>i) in order; lower index j(j-1)/2 + i
    let mut values = vec![0f32; count];
    let mut k = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            values[j * (j - 1) / 2 + i] = flat[k];
            k += 1;
        }
    }
    let n = if count == 0 && rows.is_empty() { 0 } else { n };
    Ok(Data::LowerTriangle { n, values })
}

fn parse_sparse(bytes: &[u8]) -> Result<Data, Error> {
    let s = text(bytes)?;
    let mut edges = Vec::new();
    let mut n = 0usize;
    for (k, line) in s.lines().enumerate() {
        let lineno = k + 1;
        if line.trim_start().starts_with('#') {
            continue;
        }
        // split into tokens manually to parse indices as integers
        let toks: Vec<(usize, &str)> = {
            let mut v = Vec::new();
            let b = line.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b',' || b[i].is_ascii_whitespace() {
                    i += 1;
                    continue;
                }
                let st = i;
                while i < b.len() && !(b[i] == b',' || b[i].is_ascii_whitespace()) {
                    i += 1;
                }
                v.push((st + 1, &line[st..i]));
            }
            v
        };
        if toks.is_empty() {
            continue;
        }
        if toks.len() != 3 {
            let col = toks.get(3).map(|t| t.0).unwrap_or(1);
            return Err(Error::parse(
                lineno,
                col,
                format!("expected `i j d`, found {} fields", toks.len()),
            ));
        }
        let mut ij = [0u32; 2];
        for t in 0..2 {
            let (col, tok) = toks[t];
            let x: u64 = tok.parse().map_err(|_| {
                Error::parse(
                    lineno,
                    col,
                    format!("expected a vertex index, found {tok:?}"),
                )
            })?;
            if x >= MAX_POINTS as u64 {
                return Err(Error::parse(
                    lineno,
                    col,
                    format!("vertex index {x} too large (at most {})", MAX_POINTS - 1),
                ));
            }
            ij[t] = x as u32;
        }
        let (col, tok) = toks[2];
        let d: f32 = tok.parse().map_err(|_| {
            Error::parse(lineno, col, format!("expected a distance, found {tok:?}"))
        })?;
        check_distance(d as f64).map_err(|m| Error::parse(lineno, col, m.to_string()))?;
        n = n.max(ij[0] as usize + 1).max(ij[1] as usize + 1);
        edges.push((ij[0], ij[1], d));
    }
    Ok(Data::Sparse { n, edges })
}

fn read_i64(bytes: &[u8], off: usize) -> Result<i64, Error> {
    bytes
        .get(off..off + 8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .ok_or_else(|| Error::Binary {
            offset: off,
            message: "unexpected end of file".into(),
        })
}

fn parse_dipha(bytes: &[u8]) -> Result<Data, Error> {
    const MAGIC: i64 = 8067171840;
    if read_i64(bytes, 0)? != MAGIC {
        return Err(Error::Binary {
            offset: 0,
            message: "not a DIPHA file (bad magic number)".into(),
        });
    }
    if read_i64(bytes, 8)? != 7 {
        return Err(Error::Binary {
            offset: 8,
            message: "not a DIPHA distance matrix (type is not 7)".into(),
        });
    }
    let n = read_i64(bytes, 16)?;
    if n < 0 || n as usize > MAX_DENSE_POINTS {
        return Err(Error::Binary {
            offset: 16,
            message: format!("invalid or too large number of points {n}"),
        });
    }
    let n = n as usize;
    let need = 24 + 8 * n * n;
    if bytes.len() < need {
        return Err(Error::Binary {
            offset: bytes.len(),
            message: format!(
                "file too short: {n}x{n} matrix needs {need} bytes, found {}",
                bytes.len()
            ),
        });
    }
    let mut values = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in 0..i {
            let off = 24 + 8 * (i * n + j);
            let x = f64::from_le_bytes(bytes[off..off + 8].try_into().unwrap_or([0; 8]));
            check_distance(x).map_err(|m| Error::Binary {
                offset: off,
                message: format!("entry ({i},{j}): {m}"),
            })?;
            values.push(x as f32);
        }
    }
    Ok(Data::LowerTriangle { n, values })
}

fn parse_binary(bytes: &[u8]) -> Result<Data, Error> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::Binary {
            offset: bytes.len() - bytes.len() % 4,
            message: "trailing bytes: length is not a multiple of 4".into(),
        });
    }
    let count = bytes.len() / 4;
    let n = triangular_n(count).ok_or_else(|| Error::Binary {
        offset: bytes.len(),
        message: format!("{count} values do not form a lower triangle"),
    })?;
    check_dense_size(n)?;
    let mut values = Vec::with_capacity(count);
    for (k, c) in bytes.chunks_exact(4).enumerate() {
        let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        check_distance(x as f64).map_err(|m| Error::Binary {
            offset: 4 * k,
            message: m.to_string(),
        })?;
        values.push(x);
    }
    let n = if count == 0 { 0 } else { n };
    Ok(Data::LowerTriangle { n, values })
}
