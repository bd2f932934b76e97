//! Maintenance windows: a rollout may order devices only during some hours of their local
//! day. A device's zone is the value of its tag `<tz_tag>=<zone>` (or `<tz_tag>:<zone>`),
//! else the plan's `tz`, else UTC. The IANA time zone database is compiled in (`jiff`
//! with its bundled tzdb): nothing is read or downloaded at run time, and the time passed
//! in (`now`, ms since the epoch) stays the only clock.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The plan key `maintenance`: `{"hours": "01:00-05:00", "tz": "Europe/Berlin", "tz_tag": "tz"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// `HH:MM-HH:MM`, local time, the start inclusive and the end exclusive; a window whose
    /// end is before its start wraps midnight (`22:00-04:00`); `24:00` ends at midnight.
    pub hours: String,
    /// The zone of devices without a (known) zone tag; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The tag key naming a device's own zone (`tz` reads tags `tz=Asia/Tokyo`/`tz:Asia/Tokyo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz_tag: Option<String>,
}

/// Parsed hours: minutes of the local day, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    pub start: u16,
    pub end: u16,
}

impl Hours {
    /// Whether minute `m` of the local day (0..1440) is inside.
    pub fn contains(&self, m: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }
}

fn minute(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// `HH:MM-HH:MM` (start and end differ).
pub fn parse_hours(s: &str) -> Result<Hours, String> {
    let bad = || {
        format!(
            "`maintenance.hours` {s:?}: HH:MM-HH:MM, local time, start and end differ (22:00-04:00 wraps midnight)"
        )
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (start, end) = (
        minute(a, false).ok_or_else(bad)?,
        minute(b, true).ok_or_else(bad)?,
    );
    if start == end % 1440 {
        return Err(bad());
    }
    Ok(Hours { start, end })
}

/// An IANA zone of the bundled database (`UTC` included).
pub fn zone(name: &str) -> Option<TimeZone> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    TimeZone::get(name).ok()
}

/// The minute of the local day (0..1440) at `now_ms` in `tz`.
pub fn local_minute(now_ms: i64, tz: &TimeZone) -> u16 {
    let Ok(t) = Timestamp::from_millisecond(now_ms) else {
        return 0;
    };
    let dt = tz.to_datetime(t);
    dt.hour() as u16 * 60 + dt.minute() as u16
}

impl Maintenance {
    /// The checks of the plan key (errors name the key).
    pub fn check(&self) -> Result<(), String> {
        parse_hours(&self.hours)?;
        if let Some(tz) = &self.tz {
            if zone(tz).is_none() {
                return Err(format!(
                    "`maintenance.tz` {tz:?} is not a known IANA time zone (e.g. Europe/Berlin, UTC)"
                ));
            }
        }
        if matches!(&self.tz_tag, Some(k) if k.trim().is_empty()) {
            return Err("`maintenance.tz_tag` names a tag key".into());
        }
        Ok(())
    }

    /// The zone tag's value among a device's tags (none without `tz_tag`).
    pub fn device_zone(&self, tags: &[String]) -> Option<String> {
        let key = self.tz_tag.as_deref()?;
        super::plan::tag_value(tags, key).map(str::to_string)
    }

    /// A gate for one tick: the hours parsed and the default zone looked up once.
    pub fn gate(&self) -> Gate {
        Gate {
            hours: parse_hours(&self.hours).ok(),
            default: self.tz.as_deref().and_then(zone).unwrap_or(TimeZone::UTC),
            zones: Vec::new(),
        }
    }
}

/// Whether a device's window is open, with its zones looked up once per tick.
pub struct Gate {
    /// `None` only for a plan that never passed its check: then nothing is ordered.
    hours: Option<Hours>,
    default: TimeZone,
    zones: Vec<(String, Option<TimeZone>)>,
}

impl Gate {
    /// Whether a device whose zone tag says `tag` (if any) is inside its window at `now`.
    /// An unknown zone in a tag counts as no tag (the plan's zone).
    pub fn open(&mut self, now_ms: i64, tag: Option<&str>) -> bool {
        let Some(hours) = self.hours else {
            return false;
        };
        let tz = match tag {
            None => &self.default,
            Some(name) => {
                let i = match self.zones.iter().position(|(n, _)| n == name) {
                    Some(i) => i,
                    None => {
                        self.zones.push((name.to_string(), zone(name)));
                        self.zones.len() - 1
                    }
                };
                self.zones[i].1.as_ref().unwrap_or(&self.default)
            }
        };
        hours.contains(local_minute(now_ms, tz))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_and_wrap() {
        let h = parse_hours("01:00-05:00").unwrap();
        assert_eq!(
            h,
            Hours {
                start: 60,
                end: 300
            }
        );
        assert!(!h.contains(59) && h.contains(60) && h.contains(299) && !h.contains(300));
        let w = parse_hours("22:00-04:00").unwrap();
        assert!(w.contains(22 * 60) && w.contains(23 * 60 + 59) && w.contains(0));
        assert!(w.contains(3 * 60 + 59) && !w.contains(4 * 60) && !w.contains(12 * 60));
        let late = parse_hours("20:00-24:00").unwrap();
        assert!(late.contains(23 * 60 + 59) && !late.contains(0));
        for bad in [
            "",
            "1:00-5:00",
            "01:00",
            "01:00-01:00",
            "00:00-24:00",
            "25:00-01:00",
            "01:60-02:00",
            "24:00-01:00",
            "aa:bb-cc:dd",
            "01:00-05:00-06:00",
        ] {
            let e = parse_hours(bad).unwrap_err();
            assert!(e.contains("maintenance.hours"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn local_minutes_follow_the_zone_and_its_dst() {
        // 2026-01-15T00:30:00Z: 01:30 in Berlin (CET), 09:30 in Tokyo
        let winter = 1_768_437_000_000;
        assert_eq!(local_minute(winter, &zone("Europe/Berlin").unwrap()), 90);
        assert_eq!(
            local_minute(winter, &zone("Asia/Tokyo").unwrap()),
            9 * 60 + 30
        );
        assert_eq!(local_minute(winter, &zone("UTC").unwrap()), 30);
        // 2026-07-15T00:30:00Z: 02:30 in Berlin (CEST)
        let summer = 1_784_075_400_000;
        assert_eq!(local_minute(summer, &zone("Europe/Berlin").unwrap()), 150);
        assert!(zone("Mars/Olympus_Mons").is_none() && zone(" ").is_none());
    }
}
