//! The one line uml_moo prints when a merge is done (what was merged, how much, how
//! long), and dates for people.

use std::path::Path;
use std::time::Duration;

use indicatif::HumanBytes;

use crate::merge::{MergeReport, Target};

/// `merged COW into NEW: 1.00 GiB disk, 102.40 MiB (10.0%) from the COW file, in 0.52 s`.
pub fn line(cow: &Path, target: &Target, r: &MergeReport, took: Duration) -> String {
    let backing = &r.backing;
    let disk = r.sectors * r.sector_size;
    let dirty = r.dirty_sectors * r.sector_size;
    let percent = if r.sectors == 0 {
        0.0
    } else {
        r.dirty_sectors as f64 * 100.0 / r.sectors as f64
    };
    let into = match target {
        Target::NewFile(new) => format!("{} (over {})", new.display(), backing.display()),
        Target::InPlace => format!("its backing file {}", backing.display()),
    };
    format!(
        "merged {} into {into}: {} disk, {} ({percent:.1}%) from the COW file, in {:.2} s{}",
        cow.display(),
        HumanBytes(disk),
        HumanBytes(dirty),
        took.as_secs_f64(),
        if r.resumed {
            " (finished an interrupted merge)"
        } else {
            ""
        },
    )
}

/// `secs` since the epoch as a UTC date, `2026-12-03 12:24:47 UTC`.
pub fn utc_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (days in 400-year eras of
/// 146097 days, years starting in March so the leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_like_date_u() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_796_300_687), "2026-12-03 12:24:47 UTC");
        assert_eq!(utc_date(4_294_967_295), "2106-02-07 06:28:15 UTC");
    }

    #[test]
    fn the_summary_says_what_how_much_and_how_long() {
        let r = MergeReport {
            backing: "root_fs".into(),
            sectors: 2048,
            sector_size: 512,
            dirty_sectors: 205,
            resumed: false,
        };
        let s = line(
            Path::new("d.cow"),
            &Target::NewFile("new.img".into()),
            &r,
            Duration::from_millis(520),
        );
        assert_eq!(
            s,
            "merged d.cow into new.img (over root_fs): 1.00 MiB disk, 102.50 KiB (10.0%) \
             from the COW file, in 0.52 s"
        );
    }
}
