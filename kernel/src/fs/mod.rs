//! Filesystems: the VFS (mounts, path walks, open files), the errno values operations
//! fail with, and the filesystems themselves: tmpfs, ext2 (over `uml_proto::ext2`) and
//! hostfs (a host directory); `fuse` serves the whole tree to the host (umlfs).

pub mod blockdev;
pub mod boot;
pub mod chardev;
pub mod cmds;
pub mod cmds_attr;
pub mod errno;
pub mod ext2;
pub mod fuse;
pub mod hostfs;
pub mod humfs;
pub mod node;
pub mod procfs;
pub mod tmpfs;
pub mod vfs;

pub use errno::{Errno, FsResult};
pub use node::{Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};
pub use vfs::{oflag, Loc, MountInfo, OpenFile, Vfs};
