//! A tiny PNG encoder for the fakes (stored deflate blocks: no compression library), so that the
//! images a fake engine "generates" are real PNGs a browser decodes.

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// An RGB PNG of `width × height` whose pixel (x, y) is `pixel(x, y)`.
pub fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.extend_from_slice(&pixel(x, y));
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A deterministic picture for `seed`: the same seed gives the same bytes (and hash).
pub fn seeded_png(seed: u64, width: u32, height: u32) -> Vec<u8> {
    let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    png(width, height, |x, y| {
        let v = s.rotate_left((x + y) % 64);
        [(v as u8) ^ (x as u8), (v >> 8) as u8 ^ (y as u8), (v >> 16) as u8]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_and_adler_test_vectors() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::adler32(b"Wikipedia"), 0x11E6_0398);
        let a = super::seeded_png(1, 8, 8);
        assert!(a.starts_with(b"\x89PNG") && a.ends_with(&[0xAE, 0x42, 0x60, 0x82]));
        assert_eq!(a, super::seeded_png(1, 8, 8));
        assert_ne!(a, super::seeded_png(2, 8, 8));
    }
}
