//! One `serve` per data directory.

use std::path::Path;

use crate::paths::{LocalError, io};

/// Hold `<data-dir>/serve.lock` for the life of the process: a second server on the
/// same directory would take the first one's in-flight messages and claims for a
/// crash's leftovers. The operating system releases the lock when the process ends,
/// however it ends; the file holds the holder's pid, for the error message.
pub(super) fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, LocalError> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io("cannot open the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let written = file
                .set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| writeln!(file, "{}", std::process::id()));
            written.map_err(|e| io("cannot write the lock file", &path, e))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(LocalError::InUse {
                dir: data_dir.display().to_string(),
                holder: holder.trim().parse().ok(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock the data directory", &path, e)),
    }
}
