//! The eth device family toward the kernel's loop and mconsole: devices from the
//! command line attached at boot, `config eth<N>[=SPEC]` and `remove eth<N>`, and the
//! registration of each device's current host descriptors (a helper-made tap comes and
//! goes with `ifconfig up/down`) under the device's number.

use crate::event::Scope;
use crate::klog::KernelLog;

use super::Net;

pub use crate::mconsole::Answer;

impl Net {
    /// Sets up the `eth<N>=` devices of the command line; one that fails is logged and
    /// left out, as linux.uml does.
    pub fn attach_all<T: Copy + Eq>(
        &mut self,
        args: &[String],
        ev: &mut Scope<'_, T, usize>,
        log: &mut KernelLog,
    ) {
        for arg in args {
            if let Err(e) = self.add(arg, ev, log) {
                log.err(e.to_string());
            }
        }
    }

    fn add<T: Copy + Eq>(
        &mut self,
        arg: &str,
        ev: &mut Scope<'_, T, usize>,
        log: &mut KernelLog,
    ) -> Result<(), super::NetError> {
        let n = self.attach(arg, log)?;
        for fd in self.fds(n) {
            ev.register(fd, n);
        }
        Ok(())
    }

    /// Watches the devices' current host descriptors after `ifconfig` changed them.
    pub fn sync_fds<T: Copy + Eq>(&mut self, ev: &mut Scope<'_, T, usize>) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        for n in 0..super::DEV_SLOTS {
            ev.unregister(n);
            for fd in self.fds(n) {
                ev.register(fd, n);
            }
        }
    }

    /// mconsole `config eth<N>[=SPEC]`; None when `arg` names another device.
    pub fn config<T: Copy + Eq>(
        &mut self,
        arg: &str,
        ev: &mut Scope<'_, T, usize>,
        log: &mut KernelLog,
    ) -> Option<Answer> {
        if !arg.starts_with("eth") {
            return None;
        }
        if arg.contains('=') {
            return Some(match self.add(arg, ev, log) {
                Ok(()) => (0, String::new()),
                Err(e) => (-libc::EINVAL, e.to_string()),
            });
        }
        Some(
            match arg[3..]
                .parse::<usize>()
                .ok()
                .and_then(|n| self.devs.get(n)?.as_ref())
            {
                Some(d) => (0, d.spec.text.clone()),
                None => (-libc::ENODEV, "Device doesn't exist".into()),
            },
        )
    }

    /// mconsole `remove eth<N>` (only a device that is down); None when `arg` names
    /// another device. The removed device's number comes back with the answer.
    pub fn remove_dev<T: Copy + Eq>(
        &mut self,
        arg: &str,
        ev: &mut Scope<'_, T, usize>,
    ) -> Option<(Answer, Option<usize>)> {
        let n = arg.strip_prefix("eth")?;
        let Ok(n) = n.parse::<usize>() else {
            return Some(((1, "Invalid device number".into()), None));
        };
        Some(match self.devs.get(n).and_then(|d| d.as_ref()) {
            None => ((-libc::ENODEV, "Device doesn't exist".into()), None),
            Some(d) if d.up => ((-libc::EBUSY, "Device is busy".into()), None),
            Some(_) => {
                self.devs[n] = None;
                ev.unregister(n);
                ((0, String::new()), Some(n))
            }
        })
    }
}
