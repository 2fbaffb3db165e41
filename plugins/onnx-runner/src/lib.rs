//! The ONNX runner: a `batch-predictor` plugin whose model is an ONNX classifier.
//!
//! `predict-host package` instantiates this component, passes the model to `load-model`
//! (which reads, checks and plans it with `onnx-engine`), and writes a snapshot of the
//! instance as the plugin: every instance of that plugin starts with the model planned,
//! and `info`, `predict` and `predict-columns` only score.

use onnx_engine::{Cell, FieldKind, Manifest, Model, SampleValue, ScoreError, Scores};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

wit_bindgen::generate!({ path: "../../wit", world: "packaged-predictor" });

use mlops::predictor::columns::Cell as ColumnCell;
use mlops::predictor::types::{ClassScore, Field, FieldSpec, FieldType, Value};

static MODEL: OnceLock<Model> = OnceLock::new();

/// The system allocator, except that while a model loads, memory is zeroed as it is
/// freed: the snapshot `predict-host package` takes keeps every non-zero byte, and reading
/// a model frees several times its size in decoded protobuf.
struct ZeroFreedWhileLoading;

static LOADING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for ZeroFreedWhileLoading {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if LOADING.load(Ordering::Relaxed) {
            unsafe { ptr.write_bytes(0, layout.size()) };
            // Writes to memory about to be freed are dead to the optimiser; this keeps them.
            std::hint::black_box(ptr);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !LOADING.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Moved by hand, so the old block is zeroed like any other freed one.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size)) };
            unsafe { self.dealloc(ptr, layout) };
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: ZeroFreedWhileLoading = ZeroFreedWhileLoading;

fn model() -> &'static Model {
    MODEL
        .get()
        .expect("no model is packaged into this runner: package one with `predict-host package MODEL.onnx`")
}

struct Runner;

impl Guest for Runner {
    fn load_model(bytes: Vec<u8>, manifest: String) -> Result<(), String> {
        if MODEL.get().is_some() {
            return Err("a model is already packaged into this plugin".into());
        }
        LOADING.store(true, Ordering::Relaxed);
        let loaded =
            Manifest::parse(&manifest).and_then(|m| Model::load(bytes, &m).map_err(|e| e.to_string()));
        drop(manifest);
        LOADING.store(false, Ordering::Relaxed);
        MODEL.set(loaded?).map_err(|_| "a model is already packaged into this plugin".to_string())
    }

    fn info() -> ModelInfo {
        let info = &model().info;
        ModelInfo {
            name: info.name.clone(),
            version: info.version.clone(),
            description: info.description.clone(),
            inputs: info
                .fields
                .iter()
                .map(|f| FieldSpec {
                    name: f.name.clone(),
                    type_: match f.kind {
                        FieldKind::Text => FieldType::Text,
                        FieldKind::Number => FieldType::Number,
                    },
                    required: f.required,
                    categories: f.categories.clone(),
                    description: f.description.clone(),
                })
                .collect(),
            labels: info.labels.clone(),
            sample: info
                .sample
                .iter()
                .map(|(name, value)| Field {
                    name: name.clone(),
                    value: match value {
                        SampleValue::Text(text) => Value::Text(text.clone()),
                        SampleValue::Number(x) => Value::Number(*x),
                    },
                })
                .collect(),
        }
    }

    fn predict(rows: Vec<Vec<Field>>) -> Result<Vec<Prediction>, PredictError> {
        let model = model();
        let scores = model.score(batch_from_rows(model, rows)).map_err(predict_error)?;
        let labels = &model.info.labels;
        Ok(scores
            .labels
            .iter()
            .zip(scores.probabilities.chunks(labels.len()))
            .map(|(&label, probabilities)| Prediction {
                label: labels[label as usize].clone(),
                scores: labels
                    .iter()
                    .zip(probabilities)
                    .map(|(label, &probability)| ClassScore { label: label.clone(), probability })
                    .collect(),
            })
            .collect())
    }

    fn predict_columns(batch: Batch) -> Result<BatchScores, PredictError> {
        let columns = batch
            .columns
            .into_iter()
            .map(|column| {
                column
                    .into_iter()
                    .map(|cell| match cell {
                        ColumnCell::Absent => Cell::Absent,
                        ColumnCell::Number(x) => Cell::Number(x),
                        ColumnCell::Text(t) => Cell::Text(t),
                    })
                    .collect()
            })
            .collect();
        let batch = onnx_engine::Batch { rows: batch.rows as usize, texts: batch.texts, columns };
        let Scores { labels, probabilities } = model().score(batch).map_err(predict_error)?;
        Ok(BatchScores { labels, probabilities })
    }
}

/// Lays rows out by column in the model's field order, moving their texts.
fn batch_from_rows(model: &Model, rows: Vec<Vec<Field>>) -> onnx_engine::Batch {
    let fields = &model.info.fields;
    let mut columns: Vec<Vec<Cell>> = fields.iter().map(|_| Vec::with_capacity(rows.len())).collect();
    let mut texts = Vec::new();
    let count = rows.len();
    for row in rows {
        let mut cells = vec![Cell::Absent; fields.len()];
        for field in row {
            let Some(index) = fields.iter().position(|f| f.name == field.name) else { continue };
            cells[index] = match field.value {
                Value::Number(x) => Cell::Number(x),
                Value::Text(text) => {
                    texts.push(text);
                    Cell::Text(u32::try_from(texts.len() - 1).expect("fewer than 2^32 texts"))
                }
            };
        }
        columns.iter_mut().zip(cells).for_each(|(column, cell)| column.push(cell));
    }
    onnx_engine::Batch { rows: count, texts, columns }
}

fn predict_error(error: ScoreError) -> PredictError {
    match error {
        ScoreError::Invalid { row, message } => {
            PredictError::InvalidInput((u32::try_from(row).unwrap_or(u32::MAX), message))
        }
        ScoreError::Model(message) => PredictError::Internal(message),
    }
}

export!(Runner);
