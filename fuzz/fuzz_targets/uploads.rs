//! Uploads (POST /api/v1/uploads): a multipart body (the first line is the
//! boundary) read as the route reads it, then the `file` part parsed in the
//! format the `format` part names, as the upload service does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_model::UploadFormat;

fuzz_target!(|data: &[u8]| {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(boundary) = std::str::from_utf8(&data[..nl]) else {
        return;
    };
    let body = bytes::Bytes::copy_from_slice(&data[nl + 1..]);
    let read = futures::executor::block_on(marketd_api::routes::tda::read_multipart_bytes(
        body,
        boundary,
        1 << 20,
    ));
    let Ok((file, format, _name)) = read else {
        return;
    };
    let format = format
        .as_deref()
        .and_then(UploadFormat::parse)
        .unwrap_or(UploadFormat::PointCloud);
    let _ = marketd_tda::parse(&file, marketd_engine::services::tda::tda_format(format));
});
