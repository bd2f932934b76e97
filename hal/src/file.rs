//! A camera made of files, for research, batch analysis, tests and the demo: still images
//! (JPEG, PNG; a folder is read in name order) and Y4M video, paced at the file's frame
//! rate or as fast as possible. A file that cannot be decoded is reported as
//! [`CameraError::Skipped`] and the source goes on with the next.
//!
//! Length: ~510 lines, ~360 before its unit tests: stills, folders and Y4M behind one camera,
//! with pacing.

use crate::camera::{Camera, CameraError, Frame};
use crate::pixel::i420_to_rgb;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Every frame as soon as it is decoded (batch analysis, benchmarks).
    AsFastAsPossible,
    /// Y4M at its own frame rate, stills at `stills_fps`.
    Realtime { stills_fps: f32 },
}

enum Item {
    Path(PathBuf),
    Bytes(Arc<str>, Bytes),
}

/// A clip in memory: built in (the demo's) or owned.
#[derive(Clone)]
enum Bytes {
    Static(&'static [u8]),
    Owned(Arc<[u8]>),
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Static(b) => b,
            Bytes::Owned(b) => b,
        }
    }
}

impl Item {
    fn name(&self) -> Arc<str> {
        match self {
            Item::Path(p) => p.display().to_string().into(),
            Item::Bytes(n, _) => n.clone(),
        }
    }
}

type Y4m = y4m::Decoder<Box<dyn Read + Send>>;

pub struct FileSource {
    items: Vec<Item>,
    next_item: usize,
    video: Option<(Arc<str>, Y4m, Duration, bool, u64)>,
    pacing: Pacing,
    looping: bool,
    seq: u64,
    due: Option<Instant>,
}

const IMAGE_EXT: [&str; 4] = ["jpg", "jpeg", "png", "y4m"];

fn wanted_in_folder(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXT.contains(&e.to_ascii_lowercase().as_str()))
}

/// The most a Y4M frame may hold: its RGB conversion is twice as big (4:2:0), within
/// [`crate::decode::MAX_IMAGE_ALLOC`]. The y4m crate allocates a frame's buffer from the
/// header (its own limit is 1 GiB): a 30-byte header declaring 7 x 52222222 pixels made it
/// allocate 548 MiB (found by fuzzing, issue 13 item 4).
const MAX_Y4M_FRAME: usize = (crate::decode::MAX_IMAGE_ALLOC / 2) as usize;

/// The header's width and height checked against [`crate::decode::MAX_IMAGE_SIDE`] before the
/// y4m crate multiplies them (unchecked: W and H near 2^32 overflow it); the header's bytes
/// are put back in front of the stream.
fn y4m_size_checked(reader: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, String> {
    let mut r = BufReader::new(reader);
    let mut header = Vec::new();
    (&mut r)
        .take(1024)
        .read_until(b'\n', &mut header)
        .map_err(|e| format!("cannot read the Y4M header: {e}"))?;
    // Not Y4M, or a value that is not a number: the y4m crate says what is wrong.
    let fields = header
        .strip_prefix(b"YUV4MPEG2 ")
        .unwrap_or_default()
        .split(|&b| b == b' ' || b == b'\n');
    for field in fields {
        let Some((&k, v)) = field
            .split_first()
            .filter(|(k, _)| matches!(k, b'W' | b'H'))
        else {
            continue;
        };
        let n: Option<u64> = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
        if n.is_some_and(|n| n > u64::from(crate::decode::MAX_IMAGE_SIDE)) {
            return Err(format!(
                "Y4M {} {} is not supported (1..={} pixels)",
                if k == b'W' { "width" } else { "height" },
                String::from_utf8_lossy(v),
                crate::decode::MAX_IMAGE_SIDE
            ));
        }
    }
    Ok(Box::new(Cursor::new(header).chain(r)))
}

impl FileSource {
    /// Files and folders (a folder contributes its `.jpg/.jpeg/.png/.y4m` files in name
    /// order; named files are taken whatever their extension). `looping` starts over at the end.
    pub fn new(
        paths: &[PathBuf],
        pacing: Pacing,
        looping: bool,
    ) -> Result<FileSource, CameraError> {
        let mut items = Vec::new();
        for p in paths {
            if p.is_dir() {
                let rd = std::fs::read_dir(p).map_err(|e| {
                    CameraError::Config(format!("cannot list {}: {e}", p.display()))
                })?;
                let mut files: Vec<PathBuf> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && wanted_in_folder(p))
                    .collect();
                files.sort();
                items.extend(files.into_iter().map(Item::Path));
            } else {
                items.push(Item::Path(p.clone()));
            }
        }
        if items.is_empty() {
            return Err(CameraError::Config(format!(
                "no image or Y4M files in {paths:?}"
            )));
        }
        Ok(Self::with_items(items, pacing, looping))
    }

    /// A Y4M clip held in memory (the demo's embedded sample).
    pub fn from_y4m_bytes(
        name: &str,
        bytes: &'static [u8],
        pacing: Pacing,
        looping: bool,
    ) -> FileSource {
        Self::with_items(
            vec![Item::Bytes(name.into(), Bytes::Static(bytes))],
            pacing,
            looping,
        )
    }

    /// A Y4M clip held in memory that is not built in (the `y4m` fuzz target and its replay
    /// test read clips this way).
    pub fn from_y4m_vec(name: &str, bytes: Vec<u8>, pacing: Pacing, looping: bool) -> FileSource {
        Self::with_items(
            vec![Item::Bytes(name.into(), Bytes::Owned(bytes.into()))],
            pacing,
            looping,
        )
    }

    fn with_items(items: Vec<Item>, pacing: Pacing, looping: bool) -> FileSource {
        FileSource {
            items,
            next_item: 0,
            video: None,
            pacing,
            looping,
            seq: 0,
            due: None,
        }
    }

    fn pace(&mut self, interval: Duration) {
        if let Pacing::Realtime { .. } = self.pacing {
            let now = Instant::now();
            match self.due {
                Some(due) if due > now => std::thread::sleep(due - now),
                _ => {}
            }
            let base = self.due.filter(|d| *d + interval > now).unwrap_or(now);
            self.due = Some(base + interval);
        }
    }

    fn frame(&mut self, image: image::RgbImage, origin: (Arc<str>, u64)) -> Frame {
        let f = Frame {
            image,
            captured: Instant::now(),
            wall: SystemTime::now(),
            seq: self.seq,
            origin: Some(origin),
        };
        self.seq += 1;
        f
    }

    fn open_video(
        name: Arc<str>,
        reader: Box<dyn Read + Send>,
    ) -> Result<(Arc<str>, Y4m, Duration, bool, u64), CameraError> {
        let skip = |reason: String| CameraError::Skipped {
            item: name.to_string(),
            reason,
        };
        let reader = y4m_size_checked(reader).map_err(&skip)?;
        let limits = y4m::Limits {
            bytes: MAX_Y4M_FRAME,
        };
        let dec = y4m::Decoder::new_with_limits(reader, limits).map_err(|e| match e {
            y4m::Error::OutOfMemory => skip(format!(
                "a Y4M frame over {} MiB is not read",
                MAX_Y4M_FRAME >> 20
            )),
            e => skip(format!("not a readable Y4M stream: {e:?}")),
        })?;
        match dec.get_colorspace() {
            y4m::Colorspace::C420
            | y4m::Colorspace::C420jpeg
            | y4m::Colorspace::C420paldv
            | y4m::Colorspace::C420mpeg2 => {}
            other => {
                return Err(skip(format!(
                    "Y4M colour space {other:?} is not supported (8-bit 4:2:0 only)"
                )));
            }
        }
        let r = dec.get_framerate();
        let interval = if r.num > 0 && r.den > 0 {
            // A header's ratio can be any pair of integers: 1/(2^64-1) fps is no Duration.
            Duration::try_from_secs_f64(r.den as f64 / r.num as f64).map_err(|_| {
                skip(format!(
                    "Y4M frame rate {}/{} is out of range",
                    r.num, r.den
                ))
            })?
        } else {
            Duration::from_millis(100)
        };
        let params = String::from_utf8_lossy(dec.get_raw_params()).to_ascii_uppercase();
        let full = params.contains("XCOLORRANGE=FULL");
        Ok((name, dec, interval, full, 0))
    }

    fn next_from_video(&mut self) -> Option<Result<Frame, CameraError>> {
        let (name, dec, interval, full, idx) = self.video.as_mut()?;
        let (name, interval, full, index) = (name.clone(), *interval, *full, *idx);
        let (w, h) = (dec.get_width() as u32, dec.get_height() as u32);
        let img = match dec.read_frame() {
            Ok(f) => i420_to_rgb(
                f.get_y_plane(),
                f.get_u_plane(),
                f.get_v_plane(),
                w,
                h,
                full,
            ),
            Err(y4m::Error::EOF) => {
                self.video = None;
                return None;
            }
            Err(e) => {
                self.video = None;
                return Some(Err(CameraError::Skipped {
                    item: format!("{name} frame {index}"),
                    reason: format!("truncated or corrupt Y4M frame: {e:?}"),
                }));
            }
        };
        if let Some(v) = self.video.as_mut() {
            v.4 += 1;
        }
        let Some(img) = img else {
            self.video = None;
            return Some(Err(CameraError::Skipped {
                item: format!("{name} frame {index}"),
                reason: "frame planes too small for the header's size".into(),
            }));
        };
        self.pace(interval);
        Some(Ok(self.frame(img, (name, index))))
    }
}

impl Camera for FileSource {
    fn describe(&self) -> String {
        format!(
            "files ({} inputs, {:?}{})",
            self.items.len(),
            self.pacing,
            if self.looping { ", looping" } else { "" }
        )
    }

    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        loop {
            if let Some(r) = self.next_from_video() {
                return r;
            }
            if self.next_item >= self.items.len() {
                if !self.looping {
                    return Err(CameraError::End);
                }
                self.next_item = 0;
            }
            let item = &self.items[self.next_item];
            self.next_item += 1;
            let name = item.name();
            let is_y4m = match item {
                Item::Path(p) => p.extension().is_some_and(|e| e.eq_ignore_ascii_case("y4m")),
                Item::Bytes(_, b) => b.as_ref().starts_with(b"YUV4MPEG2"),
            };
            if is_y4m {
                let reader: Box<dyn Read + Send> = match item {
                    Item::Path(p) => match std::fs::File::open(p) {
                        Ok(f) => Box::new(BufReader::new(f)),
                        Err(e) => {
                            return Err(CameraError::Skipped {
                                item: name.to_string(),
                                reason: e.to_string(),
                            });
                        }
                    },
                    Item::Bytes(_, b) => Box::new(Cursor::new(b.clone())),
                };
                self.video = Some(Self::open_video(name, reader)?);
                continue;
            }
            let decoded = match item {
                Item::Path(p) => std::fs::read(p)
                    .map_err(image::ImageError::IoError)
                    .and_then(|b| crate::decode_image(&b)),
                Item::Bytes(_, b) => crate::decode_image(b.as_ref()),
            };
            let img = decoded.map_err(|e| CameraError::Skipped {
                item: name.to_string(),
                reason: format!("cannot decode image: {e}"),
            })?;
            let fps = match self.pacing {
                Pacing::Realtime { stills_fps } if stills_fps > 0.0 => stills_fps,
                _ => 1.0,
            };
            self.pace(Duration::from_secs_f32(1.0 / fps));
            return Ok(self.frame(img.to_rgb8(), (name, 0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
        let p = dir.join(name);
        image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]))
            .save(&p)
            .unwrap();
        p
    }

    fn y4m_bytes(w: usize, h: usize, frames: usize, truncate: usize) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = y4m::encode(w, h, y4m::Ratio::new(25, 1))
                .with_colorspace(y4m::Colorspace::C420jpeg)
                .write_header(&mut out)
                .unwrap();
            let y = vec![200u8; w * h];
            let c = vec![128u8; w.div_ceil(2) * h.div_ceil(2)];
            for _ in 0..frames {
                enc.write_frame(&y4m::Frame::new([&y, &c, &c], None))
                    .unwrap();
            }
        }
        out.truncate(out.len() - truncate);
        out
    }

    #[test]
    fn folder_in_name_order_skips_corrupt_and_ignores_other_files() {
        let d = tempfile::tempdir().unwrap();
        write_png(d.path(), "b.png", 4, 3);
        write_png(d.path(), "a.png", 2, 2);
        std::fs::write(d.path().join("c.jpg"), b"not a jpeg").unwrap();
        std::fs::write(d.path().join("notes.txt"), b"hello").unwrap();
        let mut s =
            FileSource::new(&[d.path().to_path_buf()], Pacing::AsFastAsPossible, false).unwrap();
        let f = s.next_frame().unwrap();
        assert_eq!((f.image.width(), f.seq), (2, 0));
        assert!(f.origin.unwrap().0.ends_with("a.png"));
        assert_eq!(s.next_frame().unwrap().image.width(), 4);
        match s.next_frame() {
            Err(CameraError::Skipped { item, .. }) => assert!(item.ends_with("c.jpg")),
            other => panic!("expected a skip, got {other:?}"),
        }
        assert!(matches!(s.next_frame(), Err(CameraError::End)));
    }

    #[test]
    fn y4m_frames_decode_and_a_truncated_last_frame_ends_the_clip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("clip.y4m");
        std::fs::write(&p, y4m_bytes(6, 4, 3, 5)).unwrap();
        let mut s = FileSource::new(&[p], Pacing::AsFastAsPossible, false).unwrap();
        for i in 0..2 {
            let f = s.next_frame().unwrap();
            assert_eq!((f.image.width(), f.image.height()), (6, 4));
            assert_eq!(f.origin.as_ref().unwrap().1, i);
        }
        // the y4m crate reports a short last frame as end of file: the clip ends there
        assert!(matches!(s.next_frame(), Err(CameraError::End)));
    }

    #[test]
    fn file_that_is_not_y4m_is_skipped_and_the_batch_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let bad = d.path().join("bad.y4m");
        std::fs::write(&bad, b"definitely not video").unwrap();
        let good = write_png(d.path(), "z.png", 3, 3);
        let mut s = FileSource::new(&[bad, good], Pacing::AsFastAsPossible, false).unwrap();
        assert!(matches!(s.next_frame(), Err(CameraError::Skipped { .. })));
        assert_eq!(s.next_frame().unwrap().image.width(), 3);
    }

    /// Hostile input (found reading the Y4M path for issue 13's fuzzing): a frame rate of
    /// 1/(2^64-1) fps made the interval too long for a `Duration`, and
    /// `Duration::from_secs_f64` panicked.
    #[test]
    fn y4m_frame_rate_too_slow_for_a_duration_is_skipped_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("slow.y4m");
        let mut clip = b"YUV4MPEG2 W2 H2 F1:18446744073709551615 C420jpeg\n".to_vec();
        clip.extend_from_slice(b"FRAME\n");
        clip.extend_from_slice(&[128u8; 6]);
        std::fs::write(&p, clip).unwrap();
        let mut s = FileSource::new(&[p], Pacing::AsFastAsPossible, false).unwrap();
        match s.next_frame() {
            Err(CameraError::Skipped { reason, .. }) => {
                assert!(reason.contains("frame rate"), "{reason}")
            }
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    /// Found by fuzzing (issue 13 item 4; the input is fuzz/regressions/y4m/): a 35-byte
    /// header declaring 7 x 52222222 pixels made the y4m crate allocate 548 MiB for a frame.
    /// A side over 8192 pixels, or a frame over 32 MiB (8-bit 4:2:0 up to ~4730 x 4730), is
    /// skipped with a reason; a side near 2^32 no longer reaches the y4m crate's unchecked
    /// multiplication.
    #[test]
    fn y4m_header_declaring_a_huge_frame_is_skipped_with_a_reason() {
        let fuzzed = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/y4m/w7-h52222222-574MB"
        ))
        .unwrap();
        for (clip, why) in [
            (fuzzed, "Y4M height 52222222 is not supported"),
            (
                b"YUV4MPEG2 W4294967296 H4294967296 F25:1\n".to_vec(),
                "Y4M width 4294967296 is not supported",
            ),
            (
                b"YUV4MPEG2 W8192 H8192 F25:1 C444p12\n".to_vec(),
                "a Y4M frame over 32 MiB is not read",
            ),
        ] {
            let mut s = FileSource::from_y4m_vec("big", clip, Pacing::AsFastAsPossible, false);
            match s.next_frame() {
                Err(CameraError::Skipped { reason, .. }) => {
                    assert!(reason.starts_with(why), "{reason}")
                }
                other => panic!("expected a skip ({why}), got {other:?}"),
            }
            assert!(matches!(s.next_frame(), Err(CameraError::End)));
        }
        // full HD is well within the limits
        let hd = y4m_bytes(1920, 1080, 1, 0);
        let mut s = FileSource::from_y4m_vec("hd", hd, Pacing::AsFastAsPossible, false);
        assert_eq!(s.next_frame().unwrap().image.width(), 1920);
    }

    #[test]
    fn looping_memory_clip_restarts() {
        let bytes: &'static [u8] = Box::leak(y4m_bytes(4, 4, 2, 0).into_boxed_slice());
        let mut s = FileSource::from_y4m_bytes("demo", bytes, Pacing::AsFastAsPossible, true);
        let frames: Vec<(u64, u64)> = (0..5)
            .map(|_| {
                let f = s.next_frame().unwrap();
                (f.seq, f.origin.unwrap().1)
            })
            .collect();
        assert_eq!(frames, vec![(0, 0), (1, 1), (2, 0), (3, 1), (4, 0)]);
    }

    #[test]
    fn empty_folder_is_a_config_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            FileSource::new(&[d.path().to_path_buf()], Pacing::AsFastAsPossible, false),
            Err(CameraError::Config(_))
        ));
    }
}
