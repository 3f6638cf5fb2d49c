//! The inode table: our own inode numbers, and where each node lives right now.
//!
//! The kernel names files by inode number; the backing directory names them by path. The table
//! keeps both directions, and moves whole subtrees when a directory is renamed, so that the
//! volatile layer can always find a node's bytes: at a path under the backing root while it is
//! linked, in the trash while it is unlinked but its removal is not yet durable, nowhere once
//! the removal has been synced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An inode number as the kernel sees it. 1 is the root directory.
pub(crate) type Ino = u64;

pub(crate) const ROOT_INO: Ino = 1;

/// Where a node's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Linked at this path, relative to the backing root (the root itself is the empty path).
    Linked(PathBuf),
    /// Unlinked, kept at this absolute path in the trash until the removal is synced.
    Trashed(PathBuf),
    /// Unlinked for good; only an open handle still reaches the bytes.
    Gone,
}

#[derive(Debug)]
pub(crate) struct Tree {
    places: HashMap<Ino, Place>,
    linked: HashMap<PathBuf, Ino>,
    trashed: HashMap<PathBuf, Ino>,
    ino_next: Ino,
}

impl Tree {
    pub(crate) fn new() -> Tree {
        let mut tree =
            Tree { places: HashMap::new(), linked: HashMap::new(), trashed: HashMap::new(), ino_next: 0 };
        tree.reset();
        tree
    }

    /// Forgets every node but the root. Inode numbers keep growing so that a number the kernel
    /// still remembers from an earlier mount never names a different file.
    pub(crate) fn reset(&mut self) {
        self.places.clear();
        self.linked.clear();
        self.trashed.clear();
        self.places.insert(ROOT_INO, Place::Linked(PathBuf::new()));
        self.linked.insert(PathBuf::new(), ROOT_INO);
        self.ino_next = self.ino_next.max(ROOT_INO + 1);
    }

    pub(crate) fn place(&self, ino: Ino) -> Option<&Place> {
        self.places.get(&ino)
    }

    /// The path of a linked node, relative to the backing root.
    pub(crate) fn path(&self, ino: Ino) -> Option<&Path> {
        match self.places.get(&ino) {
            Some(Place::Linked(path)) => Some(path),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn ino_at(&self, path: &Path) -> Option<Ino> {
        self.linked.get(path).copied()
    }

    /// The node linked at `path`, allocating a number the first time the path is seen.
    pub(crate) fn ino_at_or_insert(&mut self, path: &Path) -> Ino {
        if let Some(ino) = self.linked.get(path) {
            return *ino;
        }
        let ino = self.ino_next;
        self.ino_next += 1;
        self.places.insert(ino, Place::Linked(path.to_path_buf()));
        self.linked.insert(path.to_path_buf(), ino);
        ino
    }

    /// Every linked node at or under `path`, with its path.
    fn subtree(&self, path: &Path) -> Vec<(PathBuf, Ino)> {
        self.linked.iter().filter(|(p, _)| p.starts_with(path)).map(|(p, ino)| (p.clone(), *ino)).collect()
    }

    /// A rename in the backing directory: the node at `from` and everything under it move to `to`.
    pub(crate) fn move_linked(&mut self, from: &Path, to: &Path) {
        for (old, ino) in self.subtree(from) {
            let Ok(rest) = old.strip_prefix(from) else { continue };
            let new = if rest.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rest) };
            self.linked.remove(&old);
            self.linked.insert(new.clone(), ino);
            self.places.insert(ino, Place::Linked(new));
        }
    }

    /// The node at `path` went to the trash at `trash`. Anything the table still lists under it
    /// cannot be reached any more (only empty directories are removed), so it is gone.
    pub(crate) fn move_to_trash(&mut self, path: &Path, trash: &Path) {
        let ino = self.linked.get(path).copied();
        self.remove_linked(path);
        if let Some(ino) = ino {
            self.places.insert(ino, Place::Trashed(trash.to_path_buf()));
            self.trashed.insert(trash.to_path_buf(), ino);
        }
    }

    /// The trash entry `trash` came back to `path` (a cut undoing a removal).
    pub(crate) fn move_from_trash(&mut self, trash: &Path, path: &Path) {
        if let Some(ino) = self.trashed.remove(trash) {
            self.places.insert(ino, Place::Linked(path.to_path_buf()));
            self.linked.insert(path.to_path_buf(), ino);
        }
    }

    /// The trash entry `trash` was deleted for good. Returns the node that was there, if known.
    pub(crate) fn forget_trash(&mut self, trash: &Path) -> Option<Ino> {
        let ino = self.trashed.remove(trash)?;
        self.places.insert(ino, Place::Gone);
        Some(ino)
    }

    /// The entry at `path` and everything under it were deleted for good.
    pub(crate) fn remove_linked(&mut self, path: &Path) {
        for (old, ino) in self.subtree(path) {
            self.linked.remove(&old);
            self.places.insert(ino, Place::Gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_directory_takes_its_subtree_along() {
        let mut tree = Tree::new();
        let dir = tree.ino_at_or_insert(Path::new("a"));
        let file = tree.ino_at_or_insert(Path::new("a/f"));
        let sibling = tree.ino_at_or_insert(Path::new("ab"));
        tree.move_linked(Path::new("a"), Path::new("b/c"));
        assert_eq!(tree.path(dir), Some(Path::new("b/c")));
        assert_eq!(tree.path(file), Some(Path::new("b/c/f")));
        assert_eq!(tree.path(sibling), Some(Path::new("ab")), "a path prefix is not a parent");
        assert_eq!(tree.ino_at(Path::new("a/f")), None);
    }

    #[test]
    fn trash_round_trip_keeps_the_number() {
        let mut tree = Tree::new();
        let file = tree.ino_at_or_insert(Path::new("f"));
        tree.move_to_trash(Path::new("f"), Path::new("/t/1"));
        assert_eq!(tree.place(file), Some(&Place::Trashed(PathBuf::from("/t/1"))));
        tree.move_from_trash(Path::new("/t/1"), Path::new("g"));
        assert_eq!(tree.ino_at(Path::new("g")), Some(file));
        tree.move_to_trash(Path::new("g"), Path::new("/t/2"));
        tree.forget_trash(Path::new("/t/2"));
        assert_eq!(tree.place(file), Some(&Place::Gone));
    }
}
