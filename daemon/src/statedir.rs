//! Is the state directory (the outbox and the model store) usable by the user the daemon runs
//! as? Answered from ownership and mode bits, without creating or changing anything.
//!
//! `emotiond check` is often run by a technician as root. Testing "writable" by creating the
//! directory used to leave `/var/lib/emotiond` behind as `root:root 0755`, which locked the
//! daemon (user `emotiond`) out of its own outbox until systemd's `StateDirectory=` fixed the
//! owner. So: as root, the question is asked for the unit's user (`emotiond`, when it exists);
//! otherwise for the current user. The decision ([`assess`]) is a pure function of what the
//! file system reports, tested with plain values.
//!
//! Length: ~550 lines, ~360 before its unit tests (permission bits for owner, group and
//! others, a root-owned folder, a missing one, accounts, nothing created, no space).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The user of the packaged systemd unit (`User=emotiond`, `StateDirectory=emotiond`).
pub const SERVICE_USER: &str = "emotiond";
/// The unit's state directory: systemd creates it for [`SERVICE_USER`] at start.
pub const SERVICE_STATE_DIR: &str = "/var/lib/emotiond";

/// Whom to ask for: a user name with its uid and all its group ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// Primary and supplementary groups.
    pub gids: Vec<u32>,
}

impl Account {
    /// The user `emotiond check` speaks for: the service user when run as root and that user
    /// exists (the daemon would run as it under systemd), otherwise the current user.
    pub fn daemon_user() -> Account {
        let me = Account::current();
        if me.uid == 0 {
            if let Ok(Some(a)) = Account::lookup(SERVICE_USER) {
                return a;
            }
        }
        me
    }

    /// The current process's effective user and groups.
    pub fn current() -> Account {
        let uid = rustix::process::geteuid().as_raw();
        let mut gids = vec![rustix::process::getegid().as_raw()];
        if let Ok(g) = rustix::process::getgroups() {
            gids.extend(g.into_iter().map(|g| g.as_raw()));
        }
        let name = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| {
                passwd_entries(&p)
                    .find(|e| e.1 == uid)
                    .map(|e| e.0.to_string())
            })
            .unwrap_or_else(|| format!("uid {uid}"));
        Account { name, uid, gids }
    }

    /// A system user from `/etc/passwd` and `/etc/group` (where `adduser --system` puts it).
    pub fn lookup(name: &str) -> io::Result<Option<Account>> {
        let passwd = std::fs::read_to_string("/etc/passwd")?;
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        Ok(account_from(name, &passwd, &group))
    }
}

/// (name, uid, gid) of each well-formed `/etc/passwd` line.
fn passwd_entries(passwd: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4).then_some(())?;
        Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

/// The account `name` as `/etc/passwd` and `/etc/group` (their text) describe it.
pub fn account_from(name: &str, passwd: &str, group: &str) -> Option<Account> {
    let (_, uid, gid) = passwd_entries(passwd).find(|e| e.0 == name)?;
    let mut gids = vec![gid];
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
            if let Ok(g) = f[2].parse::<u32>() {
                if !gids.contains(&g) {
                    gids.push(g);
                }
            }
        }
    }
    Some(Account {
        name: name.to_string(),
        uid,
        gids,
    })
}

/// What the file system says about one existing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub is_dir: bool,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub read_only_mount: bool,
}

impl Entry {
    fn read(p: &Path) -> io::Result<Entry> {
        let m = std::fs::metadata(p)?;
        let read_only_mount = rustix::fs::statvfs(p)
            .map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(false);
        Ok(Entry {
            is_dir: m.is_dir(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            read_only_mount,
        })
    }

    /// Can `who` create and remove files in this directory (write + search permission)?
    pub fn writable_by(&self, who: &Account) -> bool {
        if !self.is_dir || self.read_only_mount {
            return false;
        }
        if who.uid == 0 {
            return true; // root passes the permission bits
        }
        let bits = if self.uid == who.uid {
            self.mode >> 6
        } else if who.gids.contains(&self.gid) {
            self.mode >> 3
        } else {
            self.mode
        };
        bits & 0o3 == 0o3
    }
}

/// The state directory as seen by the file system: the directory itself (if it exists), the
/// subdirectories the daemon writes (if they exist), or else the nearest existing ancestor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Present {
        dir: Entry,
        subdirs: Vec<(PathBuf, Entry)>,
    },
    Missing {
        ancestor: Option<(PathBuf, Entry)>,
    },
}

/// Subdirectories the daemon writes into: the outbox and the model store.
pub const SUBDIRS: [&str; 2] = ["outbox", "models"];

/// Look at `dir` (read-only).
pub fn observe(dir: &Path) -> io::Result<Seen> {
    match Entry::read(dir) {
        Ok(dir_entry) => {
            let mut subdirs = Vec::new();
            for s in SUBDIRS {
                let p = dir.join(s);
                match Entry::read(&p) {
                    Ok(e) => subdirs.push((p, e)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(Seen::Present {
                dir: dir_entry,
                subdirs,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut ancestor = None;
            let mut p = dir.parent();
            while let Some(a) = p {
                let a = if a.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    a
                };
                if let Ok(e) = Entry::read(a) {
                    ancestor = Some((a.to_path_buf(), e));
                    break;
                }
                p = a.parent();
            }
            Ok(Seen::Missing { ancestor })
        }
        Err(e) => Err(e),
    }
}

/// The verdict: ok with what was found, or not ok with what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub detail: String,
    pub hint: String,
}

/// Decide whether `who` can run the daemon with `dir` as its state directory.
pub fn assess(dir: &Path, seen: &Seen, who: &Account) -> Verdict {
    let d = dir.display();
    let fix = format!(
        "give it to the daemon's user: chown -R {0}: {d} && chmod 0750 {d} (the packaged unit's StateDirectory= also does this when the service starts)",
        who.name
    );
    match seen {
        Seen::Present { dir: e, subdirs } => {
            if !e.is_dir {
                return Verdict {
                    ok: false,
                    detail: format!("{d} is not a directory"),
                    hint: "point state_dir at a directory".into(),
                };
            }
            if e.read_only_mount {
                return Verdict {
                    ok: false,
                    detail: format!("{d} is on a read-only file system"),
                    hint: "point state_dir at a writable file system (e.g. under /var/lib)".into(),
                };
            }
            if !e.writable_by(who) {
                return Verdict {
                    ok: false,
                    detail: format!(
                        "{d} ({}) is not writable by {} (uid {})",
                        owner_mode(e),
                        who.name,
                        who.uid
                    ),
                    hint: fix,
                };
            }
            if let Some((p, s)) = subdirs.iter().find(|(_, s)| !s.writable_by(who)) {
                return Verdict {
                    ok: false,
                    detail: format!(
                        "{} ({}) is not writable by {} (uid {})",
                        p.display(),
                        owner_mode(s),
                        who.name,
                        who.uid
                    ),
                    hint: fix,
                };
            }
            Verdict {
                ok: true,
                detail: format!("{d} writable by {} ({})", who.name, owner_mode(e)),
                hint: String::new(),
            }
        }
        Seen::Missing { ancestor } => {
            if who.name == SERVICE_USER && dir == Path::new(SERVICE_STATE_DIR) {
                return Verdict {
                    ok: true,
                    detail: format!(
                        "{d} does not exist yet: systemd creates it for {SERVICE_USER} when the service starts (StateDirectory=emotiond)"
                    ),
                    hint: String::new(),
                };
            }
            match ancestor {
                Some((a, e)) if e.writable_by(who) => Verdict {
                    ok: true,
                    detail: format!(
                        "{d} does not exist yet: the daemon creates it ({} is writable by {})",
                        a.display(),
                        who.name
                    ),
                    hint: String::new(),
                },
                Some((a, e)) => Verdict {
                    ok: false,
                    detail: format!(
                        "{d} does not exist and {} ({}) is not writable by {}",
                        a.display(),
                        owner_mode(e),
                        who.name
                    ),
                    hint: format!(
                        "create it for the daemon's user: install -d -m 0750 -o {0} -g {0} {d}",
                        who.name
                    ),
                },
                None => Verdict {
                    ok: false,
                    detail: format!("{d} does not exist and no parent of it does"),
                    hint: "point state_dir at a directory on a writable file system".into(),
                },
            }
        }
    }
}

/// Below this much free space `emotiond check` fails the state line: the outbox would soon
/// keep summaries in memory only (health `outbox_state` `disk_full`).
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// The space an unprivileged user can still take where the outbox writes (`dir/outbox`, else
/// `dir`); None where neither exists yet.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    [dir.join("outbox"), dir.to_path_buf()]
        .iter()
        .find_map(|p| rustix::fs::statvfs(p.as_path()).ok())
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// A usable state directory's verdict with its free space (`free`), failed below
/// [`MIN_FREE_BYTES`]. Other verdicts are left as they are.
pub fn with_space(v: Verdict, free: Option<u64>) -> Verdict {
    let Some(free) = free.filter(|_| v.ok) else {
        return v;
    };
    let mib = free as f64 / (1u64 << 20) as f64;
    if free >= MIN_FREE_BYTES {
        return Verdict {
            detail: format!("{}; {mib:.1} MiB free for the outbox", v.detail),
            ..v
        };
    }
    Verdict {
        ok: false,
        detail: format!("{}; but only {free} bytes free for the outbox", v.detail),
        hint: "free space on its file system: with the disk full, summaries wait in memory \
               only (lost on a restart) and health says outbox_state disk_full"
            .into(),
    }
}

fn owner_mode(e: &Entry) -> String {
    format!("owner {}:{}, mode {:o}", e.uid, e.gid, e.mode & 0o7777)
}

/// `emotiond check`'s state line for `dir`, for the daemon's user (see [`Account::daemon_user`]).
pub fn check(dir: &Path) -> Verdict {
    let who = Account::daemon_user();
    match observe(dir) {
        Ok(seen) => with_space(assess(dir, &seen, &who), free_bytes(dir)),
        Err(e) => Verdict {
            ok: false,
            detail: format!("{}: {e}", dir.display()),
            hint: format!(
                "make state_dir readable and writable by the daemon's user ({})",
                who.name
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn user(uid: u32, gids: &[u32]) -> Account {
        Account {
            name: SERVICE_USER.into(),
            uid,
            gids: gids.to_vec(),
        }
    }

    fn dir(uid: u32, gid: u32, mode: u32) -> Entry {
        Entry {
            is_dir: true,
            uid,
            gid,
            mode: 0o040000 | mode,
            read_only_mount: false,
        }
    }

    #[test]
    fn permission_bits_decide_for_owner_group_and_others() {
        let u = user(998, &[998, 44]);
        assert!(dir(998, 998, 0o750).writable_by(&u));
        assert!(!dir(998, 998, 0o550).writable_by(&u), "owner without w");
        assert!(!dir(998, 998, 0o650).writable_by(&u), "owner without x");
        assert!(
            dir(0, 44, 0o770).writable_by(&u),
            "through a supplementary group"
        );
        assert!(!dir(0, 44, 0o750).writable_by(&u));
        assert!(
            !dir(0, 0, 0o755).writable_by(&u),
            "root:root 0755: the bug of issue 17"
        );
        assert!(
            dir(0, 0, 0o1777).writable_by(&u),
            "others may write (sticky /tmp)"
        );
        // the owner's bits count even when the group's would allow it
        assert!(!dir(998, 44, 0o570).writable_by(&u));
        assert!(
            dir(0, 0, 0o700).writable_by(&user(0, &[0])),
            "root passes the bits"
        );
        let ro = Entry {
            read_only_mount: true,
            ..dir(998, 998, 0o750)
        };
        assert!(!ro.writable_by(&u) && !ro.writable_by(&user(0, &[0])));
    }

    #[test]
    fn root_owned_state_dir_fails_for_the_service_user_with_a_fix() {
        let d = Path::new(SERVICE_STATE_DIR);
        let seen = Seen::Present {
            dir: dir(0, 0, 0o755),
            subdirs: vec![],
        };
        let v = assess(d, &seen, &user(998, &[998]));
        assert!(!v.ok);
        assert!(
            v.detail.contains("not writable by emotiond"),
            "{}",
            v.detail
        );
        assert!(
            v.hint.contains("chown -R emotiond: /var/lib/emotiond"),
            "{}",
            v.hint
        );
        // a good directory with a root-owned outbox left by an earlier check still fails
        let seen = Seen::Present {
            dir: dir(998, 998, 0o750),
            subdirs: vec![(d.join("outbox"), dir(0, 0, 0o755))],
        };
        let v = assess(d, &seen, &user(998, &[998]));
        assert!(
            !v.ok && v.detail.contains("/var/lib/emotiond/outbox"),
            "{v:?}"
        );
        let seen = Seen::Present {
            dir: dir(998, 998, 0o750),
            subdirs: vec![(d.join("outbox"), dir(998, 998, 0o750))],
        };
        assert!(assess(d, &seen, &user(998, &[998])).ok);
    }

    #[test]
    fn missing_dir_is_fine_where_systemd_or_the_daemon_creates_it() {
        let d = Path::new(SERVICE_STATE_DIR);
        let root_parent = Seen::Missing {
            ancestor: Some(("/var/lib".into(), dir(0, 0, 0o755))),
        };
        assert!(
            assess(d, &root_parent, &user(998, &[998])).ok,
            "StateDirectory="
        );
        let other = Path::new("/srv/emotiond");
        let v = assess(other, &root_parent, &user(998, &[998]));
        assert!(!v.ok && v.hint.contains("install -d"), "{v:?}");
        let mine = Seen::Missing {
            ancestor: Some(("/home/me".into(), dir(1000, 1000, 0o755))),
        };
        let me = Account {
            name: "me".into(),
            uid: 1000,
            gids: vec![1000],
        };
        assert!(assess(Path::new("/home/me/state"), &mine, &me).ok);
        assert!(!assess(d, &Seen::Missing { ancestor: None }, &me).ok);
    }

    #[test]
    fn accounts_come_from_passwd_and_group() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbroken line\nemotiond:x:998:997::/var/lib/emotiond:/usr/sbin/nologin\n";
        let group =
            "video:x:44:emotiond,pi\naudio:x:29:pi\nemotiond:x:997:\ngpio:x:900:pi,emotiond\n";
        let a = account_from("emotiond", passwd, group).unwrap();
        assert_eq!(a.uid, 998);
        assert_eq!(a.gids, vec![997, 44, 900]);
        assert!(account_from("nobody", passwd, group).is_none());
    }

    #[test]
    fn observing_creates_nothing() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("state");
        let seen = observe(&d).unwrap();
        assert!(matches!(&seen, Seen::Missing { ancestor: Some((a, _)) } if a == t.path()));
        assert!(!d.exists(), "observe must not create the directory");
        let _ = check(&d);
        assert!(!d.exists(), "check must not create the directory");

        std::fs::create_dir_all(d.join("outbox")).unwrap();
        let Seen::Present { subdirs, .. } = observe(&d).unwrap() else {
            panic!("present")
        };
        assert_eq!(
            subdirs.len(),
            1,
            "the outbox is looked at, models does not exist"
        );
        // a read-only directory as seen by a non-root account
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
        let nobody = Account {
            name: "nobody".into(),
            uid: 65534,
            gids: vec![65534],
        };
        let v = assess(&d, &observe(&d).unwrap(), &nobody);
        assert!(!v.ok, "{v:?}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_state_directory_without_space_fails_the_check_and_says_why() {
        let ok = Verdict {
            ok: true,
            detail: "/var/lib/emotiond writable".into(),
            hint: String::new(),
        };
        let v = with_space(ok.clone(), Some(3 << 20));
        assert!(v.ok);
        assert_eq!(
            v.detail,
            "/var/lib/emotiond writable; 3.0 MiB free for the outbox"
        );
        let v = with_space(ok.clone(), Some(4096));
        assert!(!v.ok);
        assert!(
            v.detail.ends_with("only 4096 bytes free for the outbox"),
            "{}",
            v.detail
        );
        assert!(v.hint.contains("disk_full"), "{}", v.hint);
        // unknown space, or already failed: left as it is
        assert_eq!(with_space(ok.clone(), None), ok);
        let bad = Verdict {
            ok: false,
            ..ok.clone()
        };
        assert_eq!(with_space(bad.clone(), Some(0)), bad);
        let d = tempfile::tempdir().unwrap();
        assert!(free_bytes(d.path()).is_some());
        assert_eq!(free_bytes(Path::new("/nonexistent/emotiond")), None);
    }
}
