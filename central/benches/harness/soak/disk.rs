//! The soak's small disk: central's results directory on a tmpfs (needs root to mount), which
//! the injector fills for a while, then frees.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const FILLER: &str = "soak-filler";

/// A tmpfs mounted on `dir`; unmounted on drop.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    /// `Err(reason)` when it cannot be mounted (not root, no `mount`).
    pub fn mount(dir: &Path, size_mb: u64) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(SmallDisk { dir: dir.to_owned() })
        } else {
            Err(format!("cannot mount a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn filler(&self) -> PathBuf {
        self.dir.join(FILLER)
    }

    /// Writes into `dir` until its disk is full; returns the bytes written. Blocking.
    pub fn fill_at(dir: &Path) -> u64 {
        let Ok(mut f) = std::fs::File::create(dir.join(FILLER)) else { return 0 };
        let block = vec![b'x'; 64 * 1024];
        let mut n = 0;
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {
            n += block.len() as u64;
        }
        let small = vec![b'x'; 512];
        while f.write_all(&small).and_then(|()| f.flush()).is_ok() {
            n += small.len() as u64;
        }
        n
    }

    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        self.free();
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
