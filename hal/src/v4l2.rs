//! V4L2 camera: mmap streaming, MJPEG or YUYV negotiated at the configured size and frame
//! rate (what the driver granted is logged and reported by `describe`), MJPEG decoded in
//! pure Rust, and reopening with back-off when the device disappears (unplug, ENODEV).

use crate::backoff::Backoff;
use crate::camera::{Camera, CameraError, Frame};
use crate::pixel::yuyv_to_rgb;
use std::time::{Duration, Instant, SystemTime};
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Config {
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Preferred pixel format, "MJPG" or "YUYV"; the other is tried when refused.
    pub format: String,
    /// A stream that delivers no frame for this long is wedged (the device stopped
    /// delivering buffers without an error): it is closed and reopened. The first frame after
    /// opening gets twice as long (cameras that settle exposure first).
    pub frame_timeout: Duration,
}

/// What the driver granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub fps: f32,
}

struct Open {
    // Field order matters: the stream must drop before the device.
    stream: Stream<'static>,
    _dev: Device,
    granted: Granted,
    /// Whether this stream has delivered a frame yet.
    delivered: bool,
}

pub struct V4l2Camera {
    cfg: V4l2Config,
    open: Option<Open>,
    backoff: Backoff,
    seq: u64,
    last_granted: Option<Granted>,
}

fn open(cfg: &V4l2Config) -> std::io::Result<Open> {
    let dev = Device::with_path(&cfg.device)?;
    let mut order = vec![cfg.format.to_ascii_uppercase()];
    for f in ["MJPG", "YUYV"] {
        if !order.iter().any(|o| o == f) {
            order.push(f.to_string());
        }
    }
    let offered: Vec<String> = dev
        .enum_formats()?
        .iter()
        .map(|d| d.fourcc.str().unwrap_or("????").to_string())
        .collect();
    let want = order
        .iter()
        .find(|f| offered.iter().any(|o| o == *f))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("device offers {offered:?}, neither MJPG nor YUYV"),
            )
        })?;
    let mut fmt = dev.format()?;
    fmt.width = cfg.width;
    fmt.height = cfg.height;
    let mut code = [0u8; 4];
    code.copy_from_slice(&want.as_bytes()[..4]);
    fmt.fourcc = FourCC::new(&code);
    let fmt = dev.set_format(&fmt)?;
    let params = dev.set_params(&v4l::video::capture::Parameters::with_fps(cfg.fps.max(1)))?;
    let fps = if params.interval.numerator > 0 {
        params.interval.denominator as f32 / params.interval.numerator as f32
    } else {
        0.0
    };
    let granted = Granted {
        fourcc: fmt.fourcc.str().unwrap_or("????").to_string(),
        width: fmt.width,
        height: fmt.height,
        stride: fmt.stride,
        fps,
    };
    if granted.width != cfg.width
        || granted.height != cfg.height
        || (fps - cfg.fps as f32).abs() > 0.5
    {
        log::warn!(
            "camera {}: asked {}x{} @ {} fps, driver granted {}x{} {} @ {:.1} fps",
            cfg.device,
            cfg.width,
            cfg.height,
            cfg.fps,
            granted.width,
            granted.height,
            granted.fourcc,
            fps
        );
    }
    let stream = Stream::with_buffers(&dev, Type::VideoCapture, 4)?;
    Ok(Open {
        stream,
        _dev: dev,
        granted,
        delivered: false,
    })
}

fn decode(buf: &[u8], g: &Granted) -> Result<image::RgbImage, String> {
    match g.fourcc.as_str() {
        "MJPG" => image::load_from_memory_with_format(buf, image::ImageFormat::Jpeg)
            .map(|i| i.to_rgb8())
            .map_err(|e| format!("MJPEG frame: {e}")),
        "YUYV" => yuyv_to_rgb(buf, g.width, g.height, g.stride)
            .ok_or_else(|| format!("YUYV frame of {} bytes is too short", buf.len())),
        other => Err(format!("unsupported pixel format {other}")),
    }
}

impl V4l2Camera {
    /// Does not touch the device: it is opened on the first `next_frame`, so a missing
    /// camera at start-up is retried like one that vanishes later.
    pub fn new(cfg: V4l2Config) -> V4l2Camera {
        V4l2Camera {
            cfg,
            open: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            seq: 0,
            last_granted: None,
        }
    }

    pub fn granted(&self) -> Option<&Granted> {
        self.last_granted.as_ref()
    }

    fn unavailable(&mut self, reason: String) -> CameraError {
        self.open = None;
        let retry_in = self.backoff.fail();
        CameraError::Unavailable {
            device: self.cfg.device.clone(),
            reason,
            retry_in,
        }
    }
}

impl Camera for V4l2Camera {
    fn describe(&self) -> String {
        match &self.last_granted {
            Some(g) => format!(
                "v4l2 {} {} {}x{} @ {:.1} fps",
                self.cfg.device, g.fourcc, g.width, g.height, g.fps
            ),
            None => format!("v4l2 {} (not open yet)", self.cfg.device),
        }
    }

    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        if self.open.is_none() {
            match open(&self.cfg) {
                Ok(o) => {
                    log::info!(
                        "camera {} open: {} {}x{} @ {:.1} fps",
                        self.cfg.device,
                        o.granted.fourcc,
                        o.granted.width,
                        o.granted.height,
                        o.granted.fps
                    );
                    self.last_granted = Some(o.granted.clone());
                    self.open = Some(o);
                }
                Err(e) => return Err(self.unavailable(format!("cannot open: {e}"))),
            }
        }
        let Some(o) = self.open.as_mut() else {
            return Err(self.unavailable("not open".into()));
        };
        let granted = o.granted.clone();
        let wait = wait_for_frame(self.cfg.frame_timeout, o.delivered);
        o.stream.set_timeout(wait);
        let (buf, meta) = match o.stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                // No error, no frame: a wedged driver or device (seen with USB cameras after
                // a bus reset, and vivid's "Percentage of Dropped Buffers" at 100). Without
                // this bound the capture thread would wait forever, and shutdown with it.
                return Err(self.unavailable(format!(
                    "no frame for {} ms (the device stopped delivering buffers without an \
                     error: wedged); reopening it",
                    wait.as_millis()
                )));
            }
            Err(e) => {
                // ENODEV (19) on unplug, EIO on driver trouble: close and reopen later.
                return Err(self.unavailable(format!("capture failed: {e}")));
            }
        };
        if meta.flags.contains(v4l::buffer::Flags::ERROR) {
            // the driver says this buffer is damaged: skip it, the stream goes on
            return Err(CameraError::Skipped {
                item: format!("{} frame {}", self.cfg.device, meta.sequence),
                reason: "driver flagged the buffer as damaged (V4L2_BUF_FLAG_ERROR)".into(),
            });
        }
        o.delivered = true;
        let used = (meta.bytesused as usize).min(buf.len());
        let image = match decode(&buf[..used], &granted) {
            Ok(i) => i,
            Err(reason) => {
                return Err(CameraError::Skipped {
                    item: format!("{} frame {}", self.cfg.device, meta.sequence),
                    reason,
                });
            }
        };
        self.backoff.reset();
        let f = Frame {
            image,
            captured: Instant::now(),
            wall: SystemTime::now(),
            seq: self.seq,
            origin: None,
        };
        self.seq += 1;
        Ok(f)
    }
}

/// How long to wait for the next frame: `timeout`, or twice that for a stream's first frame.
fn wait_for_frame(timeout: Duration, delivered: bool) -> Duration {
    if delivered { timeout } else { timeout * 2 }
}

/// One pixel format a device offers, with its frame sizes and the frame rates of each.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub fourcc: String,
    pub description: String,
    /// (size, frame rates): "640x480" with e.g. [30.0, 15.0]; a stepwise range is one entry
    /// such as "16x16-1920x1080/8x8" with the rates at its largest size.
    pub sizes: Vec<(String, Vec<f32>)>,
}

fn rates(dev: &Device, fourcc: FourCC, w: u32, h: u32) -> Vec<f32> {
    use v4l::frameinterval::FrameIntervalEnum;
    let fps = |f: &v4l::Fraction| {
        if f.numerator > 0 {
            f.denominator as f32 / f.numerator as f32
        } else {
            0.0
        }
    };
    let mut out = Vec::new();
    for i in dev.enum_frameintervals(fourcc, w, h).unwrap_or_default() {
        match i.interval {
            FrameIntervalEnum::Discrete(f) => out.push(fps(&f)),
            FrameIntervalEnum::Stepwise(s) => {
                out.push(fps(&s.min));
                out.push(fps(&s.max));
            }
        }
    }
    out
}

/// Every format, size and frame rate the device at `path` offers (VIDIOC_ENUM_FMT,
/// _FRAMESIZES, _FRAMEINTERVALS), for `emotiond check`.
pub fn modes(path: &str) -> std::io::Result<Vec<Mode>> {
    use v4l::framesize::FrameSizeEnum;
    let dev = Device::with_path(path)?;
    let mut out = Vec::new();
    for f in dev.enum_formats()? {
        let mut sizes = Vec::new();
        for s in dev.enum_framesizes(f.fourcc).unwrap_or_default() {
            match s.size {
                FrameSizeEnum::Discrete(d) => sizes.push((
                    format!("{}x{}", d.width, d.height),
                    rates(&dev, f.fourcc, d.width, d.height),
                )),
                FrameSizeEnum::Stepwise(st) => sizes.push((
                    format!(
                        "{}x{}-{}x{}/{}x{}",
                        st.min_width,
                        st.min_height,
                        st.max_width,
                        st.max_height,
                        st.step_width,
                        st.step_height
                    ),
                    rates(&dev, f.fourcc, st.max_width, st.max_height),
                )),
            }
        }
        out.push(Mode {
            fourcc: f.fourcc.str().unwrap_or("????").to_string(),
            description: f.description.clone(),
            sizes,
        });
    }
    Ok(out)
}

/// One line: "YUYV 640x480@30/15, 1280x720@30; MJPG ...".
pub fn describe_modes(modes: &[Mode]) -> String {
    let fmt_rate = |r: &f32| {
        if (r - r.round()).abs() < 0.01 {
            format!("{}", r.round() as i64)
        } else {
            format!("{r:.2}")
        }
    };
    modes
        .iter()
        .map(|m| {
            let sizes: Vec<String> = m
                .sizes
                .iter()
                .map(|(s, r)| {
                    if r.is_empty() {
                        s.clone()
                    } else {
                        let r: Vec<String> = r.iter().map(fmt_rate).collect();
                        format!("{s}@{}", r.join("/"))
                    }
                })
                .collect();
            if sizes.is_empty() {
                m.fourcc.clone()
            } else {
                format!("{} {}", m.fourcc, sizes.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(fourcc: &str, w: u32, h: u32) -> Granted {
        Granted {
            fourcc: fourcc.into(),
            width: w,
            height: h,
            stride: w * 2,
            fps: 30.0,
        }
    }

    #[test]
    fn mjpeg_and_yuyv_buffers_decode_and_bad_ones_are_errors() {
        let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 30, 30]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let out = decode(&jpeg, &granted("MJPG", 16, 8)).unwrap();
        assert_eq!((out.width(), out.height()), (16, 8));
        let p = out.get_pixel(8, 4).0;
        assert!(p[0] > 170 && p[1] < 70 && p[2] < 70, "{p:?}");
        assert!(decode(&jpeg[..jpeg.len() / 3], &granted("MJPG", 16, 8)).is_err());
        let yuyv = vec![128u8; 16 * 8 * 2];
        assert_eq!(decode(&yuyv, &granted("YUYV", 16, 8)).unwrap().width(), 16);
        assert!(decode(&yuyv[..100], &granted("YUYV", 16, 8)).is_err());
        assert!(decode(&yuyv, &granted("H264", 16, 8)).is_err());
    }

    #[test]
    fn missing_device_is_unavailable_with_growing_backoff() {
        let mut cam = V4l2Camera::new(V4l2Config {
            device: "/dev/video-does-not-exist".into(),
            width: 640,
            height: 480,
            fps: 30,
            format: "MJPG".into(),
            frame_timeout: Duration::from_secs(3),
        });
        let mut waits = Vec::new();
        for _ in 0..3 {
            match cam.next_frame() {
                Err(CameraError::Unavailable {
                    retry_in, reason, ..
                }) => {
                    assert!(reason.contains("cannot open"), "{reason}");
                    waits.push(retry_in);
                }
                other => panic!("expected unavailable, got {other:?}"),
            }
        }
        assert!(waits[0] < waits[1] && waits[1] < waits[2], "{waits:?}");
    }

    #[test]
    fn the_first_frame_of_a_stream_may_take_twice_the_frame_timeout() {
        let t = Duration::from_millis(3000);
        assert_eq!(wait_for_frame(t, false), Duration::from_millis(6000));
        assert_eq!(wait_for_frame(t, true), t);
    }

    #[test]
    fn modes_are_described_on_one_line() {
        let m = vec![
            Mode {
                fourcc: "YUYV".into(),
                description: "YUYV 4:2:2".into(),
                sizes: vec![
                    ("640x480".into(), vec![30.0, 15.0]),
                    ("1280x720".into(), vec![29.97]),
                ],
            },
            Mode {
                fourcc: "MJPG".into(),
                description: "Motion-JPEG".into(),
                sizes: vec![("16x16-1920x1080/8x8".into(), vec![])],
            },
            Mode {
                fourcc: "GREY".into(),
                description: "8-bit".into(),
                sizes: vec![],
            },
        ];
        assert_eq!(
            describe_modes(&m),
            "YUYV 640x480@30/15, 1280x720@29.97; MJPG 16x16-1920x1080/8x8; GREY"
        );
    }

    #[test]
    fn modes_of_a_missing_device_is_an_error() {
        assert!(modes("/dev/emotiond-no-such-video").is_err());
    }
}
