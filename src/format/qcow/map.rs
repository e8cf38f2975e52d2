//! Reading a qcow image (not yet implemented).

use crate::error::{Error, Result};
use crate::image::Layer;

/// Opens a qcow image for reading.
pub fn open(_filename: &str, _backing: Option<crate::image::Backing>) -> Result<Layer> {
    Err(Error::Failed(
        "reading qcow images is not supported yet".to_string(),
    ))
}
