//! `config ubdN=FILE[,BACKING]`: the kernel opens the files relative to its own working
//! directory, so the client makes relative names absolute first (as the C client does),
//! resolving the directory part physically (symlinked directories become real paths).
//! Fields are separated by `,` or `:` as the 6.1 kernel reads them; the serial field
//! after the two file names is left alone.

use std::path::Path;

/// `path` made absolute against `cwd` (uml_proto's `absolute_path`: the directory part
/// made physical), or just joined to `cwd` when its directory does not exist; an
/// absolute `path` is left as it is, as the C client does.
pub fn absolute(path: &str, cwd: &Path) -> String {
    let p = Path::new(path);
    if p.is_absolute() || path.is_empty() {
        return path.to_owned();
    }
    uml_proto::fsutil::absolute_path(p, cwd)
        .unwrap_or_else(|_| cwd.join(p))
        .to_string_lossy()
        .into_owned()
}

/// Rewrites `config ubd...=SPEC` with absolute file names; any other command comes
/// back unchanged.
pub fn absolutize_config(command: &str, cwd: &Path) -> String {
    let Some(rest) = command.strip_prefix("config") else {
        return command.to_owned();
    };
    let dev_and_spec = rest.trim_start_matches([' ', '\t']);
    if dev_and_spec.len() == rest.len() || !dev_and_spec.starts_with("ubd") {
        return command.to_owned();
    }
    let Some(eq) = dev_and_spec.find('=') else {
        return command.to_owned();
    };
    let head_len = command.len() - dev_and_spec.len() + eq + 1;
    let spec = &command[head_len..];
    let mut out = String::from(&command[..head_len]);
    let mut field = 0;
    let mut start = 0;
    for (i, c) in spec
        .char_indices()
        .chain(std::iter::once((spec.len(), '\0')))
    {
        if c == ',' || c == ':' || i == spec.len() {
            let piece = &spec[start..i];
            if field < 2 {
                out.push_str(&absolute(piece, cwd));
            } else {
                out.push_str(piece);
            }
            if i < spec.len() {
                out.push(c);
            }
            field += 1;
            start = i + c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_ubd_files_become_absolute() {
        let d = tempfile::tempdir().unwrap();
        let cwd = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(cwd.join("sub")).unwrap();
        let c = cwd.display();
        assert_eq!(
            absolutize_config("config ubd1=disk.img", &cwd),
            format!("config ubd1={c}/disk.img")
        );
        assert_eq!(
            absolutize_config("config ubd2r=cow,sub/../sub/base", &cwd),
            format!("config ubd2r={c}/cow,{c}/sub/base")
        );
        assert_eq!(
            absolutize_config("config ubd1=/abs/a,rel:serial1", &cwd),
            format!("config ubd1=/abs/a,{c}/rel:serial1")
        );
    }

    #[test]
    fn symlinked_directories_resolve_physically() {
        let d = tempfile::tempdir().unwrap();
        let cwd = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(cwd.join("real")).unwrap();
        std::os::unix::fs::symlink(cwd.join("real"), cwd.join("link")).unwrap();
        assert_eq!(
            absolutize_config("config ubd0=link/x.img", &cwd),
            format!("config ubd0={}/real/x.img", cwd.display())
        );
    }

    #[test]
    fn other_commands_are_untouched() {
        let cwd = Path::new("/tmp");
        for c in [
            "config ubd0",
            "config con1=null",
            "config eth0=daemon,,unix,sock",
            "configubd0=x",
            "remove ubd1",
            "config ubd1=",
        ] {
            assert_eq!(absolutize_config(c, cwd), c);
        }
    }
}
