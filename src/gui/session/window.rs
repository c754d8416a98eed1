//! The display window of an image with gray levels (a DICOM frame, a 16-bit PNG or TIFF): what
//! the user sees the image through. It is per image (a new image starts at the file's window;
//! another frame of the same file keeps the one the user chose), and changing it never reruns
//! the network nor changes the map: only the image texture and the base image of Save/Copy.

use std::sync::Arc;

use crate::imaging::levels::{DisplayWindow, GrayLevels, Voi, Window};

use super::{Session, TaskKind};
use crate::gui::worker::{ImageOrigin, Work, display_texture};

/// Images up to this many pixels are rendered in the frame (a 512 x 512 CT takes about a
/// millisecond); larger ones on the worker.
const RENDER_IN_FRAME_PIXELS: u64 = 1 << 20;

impl Session {
    /// The gray levels of the image on screen, if it has any.
    pub fn levels(&self) -> Option<&Arc<GrayLevels>> {
        self.image.as_ref()?.source.levels.as_ref()
    }

    /// The display window the user chose (`None`: the file's own).
    pub fn display_window(&self) -> Option<&DisplayWindow> {
        self.display.as_ref()
    }

    /// The window the image is shown through as centre and width: the chosen one, else the
    /// file's (min-max and VOI LUTs as their min-max window). What the numeric fields show and
    /// a drag starts from.
    pub fn shown_window(&self) -> Option<Window> {
        let levels = self.levels()?;
        let voi = self.display.as_ref().map_or(&levels.file_voi, |d| &d.voi);
        Some(match voi {
            Voi::Window(w) => *w,
            Voi::Lut(_) | Voi::MinMax => levels.min_max_window(),
        })
    }

    /// Whether the image is shown inverted relative to the file.
    pub fn display_inverted(&self) -> bool {
        self.display.as_ref().is_some_and(|d| d.invert)
    }

    /// Shows the image through `window` (keeping the inversion); nothing without gray levels.
    pub fn set_window(&mut self, window: Window, max_texture_side: usize) {
        if !window.is_valid() {
            return;
        }
        let invert = self.display_inverted();
        self.set_display(
            Some(DisplayWindow {
                voi: Voi::Window(window),
                invert,
            }),
            max_texture_side,
        );
    }

    /// Back to the file's own window (`None`), or its `index`th other window.
    pub fn reset_window(&mut self, index: Option<usize>, max_texture_side: usize) {
        let Some(levels) = self.levels() else {
            return;
        };
        let invert = self.display_inverted();
        let voi = match index.and_then(|i| levels.windows.get(i)) {
            Some(w) => Voi::Window(*w),
            None if invert => levels.file_voi.clone(),
            None => return self.set_display(None, max_texture_side),
        };
        self.set_display(Some(DisplayWindow { voi, invert }), max_texture_side);
    }

    /// Inverts the displayed grey levels (or stops inverting them).
    pub fn toggle_invert(&mut self, max_texture_side: usize) {
        let Some(levels) = self.levels() else {
            return;
        };
        let voi = self
            .display
            .as_ref()
            .map_or_else(|| levels.file_voi.clone(), |d| d.voi.clone());
        let invert = !self.display_inverted();
        let display = (invert || voi != levels.file_voi).then_some(DisplayWindow { voi, invert });
        self.set_display(display, max_texture_side);
    }

    /// Changes the window by a drag of `dx`, `dy` screen points (right, down): right widens,
    /// down raises the level, at a speed proportional to the image's range of values.
    pub fn drag_window(&mut self, dx: f32, dy: f32, max_texture_side: usize) {
        let (Some(levels), Some(window)) = (self.levels(), self.shown_window()) else {
            return;
        };
        let span = f64::from(levels.range.1 - levels.range.0).max(64.0);
        let per_point = span / 400.0;
        let window = Window {
            center: window.center + f64::from(dy) * per_point,
            width: (window.width + f64::from(dx) * per_point).max(1.0),
            function: window.function,
        };
        self.set_window(window, max_texture_side);
    }

    /// Shows the image through `display`: rendered now for a small image, on the worker for a
    /// large one. Never touches the analysis.
    fn set_display(&mut self, display: Option<DisplayWindow>, max_texture_side: usize) {
        let Some(image) = &self.image else {
            return;
        };
        if image.source.levels.is_none() || display == self.display {
            return;
        }
        self.display = display;
        let source = Arc::clone(&image.source);
        let pixels = u64::from(source.width()) * u64::from(source.height());
        if pixels <= RENDER_IN_FRAME_PIXELS {
            self.tasks.remove(&TaskKind::Render);
            let texture = display_texture(&source, self.display.as_ref(), max_texture_side);
            self.redisplay = Some(texture);
        } else {
            let label = format!("Windowing {}…", image.origin.name());
            let work = Work::RenderDisplay {
                image: source,
                display: self.display.clone(),
                max_texture_side,
            };
            self.submit(TaskKind::Render, label, work);
        }
    }

    /// The frame on screen and the file's number of frames (1 and 1 for a single image).
    pub fn frame(&self) -> (u32, u32) {
        self.image
            .as_ref()
            .and_then(|i| i.source.dicom.as_ref())
            .map_or((1, 1), |d| (d.frame, d.frames.max(1)))
    }

    /// Opens frame `frame` (from 1) of the file on screen: a new image for the network, shown
    /// through the display window the user chose, if any.
    pub fn open_frame(&mut self, frame: u32, max_texture_side: usize) {
        let (current, frames) = self.frame();
        let Some(ImageOrigin::File(path)) = self.image.as_ref().map(|i| i.origin.clone()) else {
            return;
        };
        if frame == current || frame < 1 || frame > frames {
            return;
        }
        let origin = ImageOrigin::File(path);
        let label = format!("Opening {}, frame {frame}…", origin.name());
        let display = self.display.clone();
        self.submit(
            TaskKind::Image,
            label,
            Work::OpenImage {
                origin,
                frame,
                max_texture_side,
                display,
            },
        );
    }

    /// Moves `step` frames forward or back, staying within the file.
    pub fn step_frame(&mut self, step: i64, max_texture_side: usize) {
        let (current, frames) = self.frame();
        if frames < 2 {
            return;
        }
        let next = (i64::from(current) + step).clamp(1, i64::from(frames)) as u32;
        self.open_frame(next, max_texture_side);
    }
}
