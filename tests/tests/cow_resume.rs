//! `uml_moo -d` killed with SIGKILL at any point is finished by running the same
//! command again, with the same bytes as an uninterrupted merge (the C tool's).

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tests::{c_tool, fingerprint, our_bin, run_ok, scratch};

const SIZE: u64 = 256 << 20;
const DATA_OFFSET: u64 = 8192 + (SIZE / 512 / 8).div_ceil(4096) * 4096;

#[test]
fn killed_in_place_merge_resumes_to_the_same_bytes() {
    let Some(c_moo) = c_tool("uml_moo") else {
        return;
    };
    let dir = scratch();
    let d = dir.path();
    let back = d.join("back.img");
    let cow = d.join("disk.cow");
    {
        let f = fs::File::create(&back).unwrap();
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 241) as u8 + 1).collect();
        for i in 0..SIZE >> 20 {
            f.write_all_at(&chunk, i << 20).unwrap();
        }
    }
    run_ok(Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&back));
    {
        // Half the sectors, scattered (every other one), hold other data; some are zero.
        let f = fs::OpenOptions::new().write(true).open(&cow).unwrap();
        f.write_all_at(&vec![0x55u8; (SIZE / 512 / 8) as usize], 8192)
            .unwrap();
        let chunk: Vec<u8> = (0..1u32 << 20)
            .map(|i| if i % 7168 < 512 { 0 } else { (i % 239) as u8 })
            .collect();
        for i in 0..SIZE >> 20 {
            f.write_all_at(&chunk, DATA_OFFSET + (i << 20)).unwrap();
        }
    }
    let expected = d.join("expected.img");
    run_ok(
        Command::new("cp")
            .arg("--preserve=timestamps")
            .arg(&back)
            .arg(&expected),
    );
    run_ok(
        Command::new(&c_moo)
            .arg("-d")
            .arg("-b")
            .arg(&expected)
            .arg(&cow),
    );
    let expected_print = fingerprint(&expected).digest;

    let journal = d.join("disk.cow.uml_moo-journal");
    let original_mtime = fingerprint(&back).mtime;
    let mtime = || {
        fs::metadata(&back)
            .map(|m| (m.mtime(), m.mtime_nsec()))
            .unwrap()
    };
    // First kill: as soon as the backing file shows a write. Later kills: at fixed
    // delays into resumed runs, wherever they happen to be.
    let mut interrupted_mid_write = 0;
    for delay_ms in [None, Some(1u64), Some(5), Some(20)] {
        let mut child = Command::new(our_bin("uml_moo"))
            .arg("-d")
            .arg(&cow)
            .spawn()
            .unwrap();
        let start = Instant::now();
        match delay_ms {
            None => {
                while mtime() == original_mtime && start.elapsed() < Duration::from_secs(20) {
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    sleep(Duration::from_micros(50));
                }
            }
            Some(ms) => sleep(Duration::from_millis(ms)),
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            break; // finished before the kill: nothing left to resume
        }
        if journal.exists() && mtime() != original_mtime {
            interrupted_mid_write += 1;
        }
    }
    assert!(
        interrupted_mid_write > 0,
        "no kill landed in the middle of the merge"
    );
    let out = run_ok(Command::new(our_bin("uml_moo")).arg("-d").arg(&cow));
    assert!(
        out.stderr.contains("finished an interrupted merge"),
        "{}",
        out.stderr
    );
    assert!(!journal.exists(), "journal left after the resumed merge");
    assert_eq!(
        fingerprint(&back).digest,
        expected_print,
        "resumed merge differs from the C tool's"
    );

    // Done: the backing file has changed, so a further run refuses as the C tool does.
    let again = tests::run(
        Command::new(our_bin("uml_moo")).arg("-d").arg(&cow),
        Duration::from_secs(20),
    );
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("mtime mismatch"), "{}", again.stderr);
}
