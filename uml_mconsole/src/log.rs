//! `log TEXT` and `log -f FILE`: text for the UML's kernel log, cut into `log CHUNK`
//! requests that each fit one request (506 bytes of text, as the C client sends), and
//! a final `log \n` when the text does not end a line.

/// Text bytes per `log` request.
pub const LOG_CHUNK: usize = 506;

/// The requests that put `text` into the kernel log.
pub fn log_requests(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = text
        .chunks(LOG_CHUNK)
        .map(|chunk| [b"log ".as_slice(), chunk].concat())
        .collect();
    if text.last() != Some(&b'\n') {
        out.push(b"log \n".to_vec());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_gets_a_newline_request() {
        assert_eq!(
            log_requests(b"hello"),
            vec![b"log hello".to_vec(), b"log \n".to_vec()]
        );
        assert_eq!(log_requests(b"line\n"), vec![b"log line\n".to_vec()]);
        assert_eq!(log_requests(b""), vec![b"log \n".to_vec()]);
    }

    #[test]
    fn long_text_is_cut_to_fit_requests() {
        let text = vec![b'x'; 1200];
        let reqs = log_requests(&text);
        let lens: Vec<usize> = reqs.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![510, 510, 4 + 188, 5]);
        assert!(lens.iter().all(|&l| l <= uml_proto::mconsole::MAX_COMMAND));
    }
}
