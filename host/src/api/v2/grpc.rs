//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService`, as
//! `tritonclient.grpc` and KServe's clients call it, on its own port, with the gRPC health
//! service (`grpc.health.v1`) beside it for Kubernetes' `grpc` probes. Requests take the
//! same path as over REST: the same tensors to rows, the same plugin call and limits.

use super::answer::Output;
use super::failure::Failure;
use super::schema::{Datatype, InferInputTensor, OutputName};
use super::tensors::{known_output, refuse_repeats, to_rows};
use super::{ModelPath, PLATFORM, metadata, serving};
use crate::api::scoring::{REQUEST_ID_HEADER, ROUTING_KEY_HEADER, Routing, Scored};
use crate::api::{ApiError, AppState};
use crate::model::PredictFailure;
use crate::telemetry::metrics;
use axum::http::StatusCode;
use bytes::Bytes;
use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::*;
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_health::ServingStatus;

/// The code generated from `proto/inference.proto` by the build script.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

/// How often the health service is told whether this host is ready.
const HEALTH_PERIOD: Duration = Duration::from_millis(250);

/// The gRPC services as routes, inference and health, with messages bounded by
/// `MAX_BODY_BYTES`; and the task that keeps the health service saying whether this host
/// is ready, for the server to run as long as it serves.
pub fn routes(state: AppState) -> (axum::Router, impl Future<Output = ()> + Send + 'static) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let slot = std::sync::Arc::clone(&state.slot);
    let keep_health = async move {
        let mut tick = tokio::time::interval(HEALTH_PERIOD);
        loop {
            tick.tick().await;
            let status = if slot.is_ready() { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            reporter.set_service_status(SERVICE, status).await;
        }
    };
    let limit = state.max_body_bytes;
    let inference = GrpcInferenceServiceServer::new(Inference { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    (Routes::new(inference).add_service(health).into_axum_router(), keep_health)
}

/// The service's full name, as health checks name it.
const SERVICE: &str = "inference.GRPCInferenceService";

struct Inference {
    state: AppState,
}

/// Counts and times one call by RPC and status code.
async fn observed<T>(rpc: &'static str, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    let started = Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    metrics::grpc_request(rpc, code_name(code), started.elapsed());
    result
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::NotFound => "NOT_FOUND",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unavailable => "UNAVAILABLE",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::Internal => "INTERNAL",
        _ => "OTHER",
    }
}

/// The gRPC status of an API error, by the HTTP status the same error has over REST.
fn status_of(error: ApiError) -> Status {
    error.report();
    let message = error.to_string();
    match error.status() {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Status::invalid_argument(message),
        StatusCode::NOT_FOUND => Status::not_found(message),
        StatusCode::PAYLOAD_TOO_LARGE => Status::resource_exhausted(message),
        StatusCode::SERVICE_UNAVAILABLE => Status::unavailable(message),
        StatusCode::GATEWAY_TIMEOUT => Status::deadline_exceeded(message),
        _ => Status::internal(message),
    }
}

fn failure_status(failure: Failure) -> Status {
    match failure {
        Failure::BadRequest(message) => Status::invalid_argument(message),
        Failure::Api(error) => status_of(error),
    }
}

fn model_path(name: String, version: String) -> ModelPath {
    ModelPath { name, version: (!version.is_empty()).then_some(version) }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        observed("ServerLive", async { Ok(Response::new(ServerLiveResponse { live: true })) }).await
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = self.state.slot.is_ready();
        observed("ServerReady", async { Ok(Response::new(ServerReadyResponse { ready })) }).await
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        observed("ModelReady", async {
            let ModelReadyRequest { name, version } = request.into_inner();
            // Before any version has loaded the model is simply not ready; another name
            // or version is not found, as over REST.
            let ready = match serving(&self.state, &model_path(name, version)) {
                Ok(_) => self.state.slot.is_ready(),
                Err(ApiError::NoModel { .. }) => false,
                Err(error) => return Err(status_of(error)),
            };
            Ok(Response::new(ModelReadyResponse { ready }))
        })
        .await
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        observed("ServerMetadata", async {
            Ok(Response::new(ServerMetadataResponse {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: Vec::new(),
            }))
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        observed("ModelMetadata", async {
            let ModelMetadataRequest { name, version } = request.into_inner();
            let model = serving(&self.state, &model_path(name, version)).map_err(status_of)?;
            let described = metadata(&model);
            let tensor = |t: super::TensorMetadata| TensorMetadata {
                name: t.name,
                datatype: t.datatype.as_str().into(),
                shape: t.shape,
            };
            Ok(Response::new(ModelMetadataResponse {
                name: described.name,
                versions: described.versions,
                platform: PLATFORM.into(),
                inputs: described.inputs.into_iter().map(tensor).collect(),
                outputs: described.outputs.into_iter().map(tensor).collect(),
            }))
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let text = |name| request.metadata().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (key, id) = (text(ROUTING_KEY_HEADER), text(REQUEST_ID_HEADER));
        observed("ModelInfer", self.infer(request.into_inner(), key, id)).await
    }
}

impl Inference {
    /// Answers one request; `key` is its `x-routing-key` metadata and `id` its
    /// `x-request-id`, if any.
    async fn infer(
        &self,
        request: ModelInferRequest,
        key: Option<String>,
        id: Option<String>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let state = &self.state;
        let named_version = !request.model_version.is_empty();
        let key = key.or_else(|| routing_parameter(&request)).or_else(|| Some(request.id.clone()));
        let routing = if named_version {
            Routing::Stable
        } else {
            Routing::Split(key.as_deref().filter(|k| !k.is_empty()))
        };
        let model =
            serving(state, &model_path(request.model_name, request.model_version)).map_err(status_of)?;
        let raw = !request.raw_input_contents.is_empty();
        if raw && request.raw_input_contents.len() != request.inputs.len() {
            return Err(Status::invalid_argument(format!(
                "raw_input_contents has {} entries for {} inputs: send one per input, in order",
                request.raw_input_contents.len(),
                request.inputs.len()
            )));
        }
        let mut raw_contents = request.raw_input_contents.into_iter();
        let tensors = request
            .inputs
            .into_iter()
            .map(|input| tensor_of(input, raw_contents.next()))
            .collect::<Result<Vec<_>, Status>>()?;
        let outputs = requested(&request.outputs).map_err(failure_status)?;
        let (rows, _) =
            to_rows(&tensors, &model.info.inputs, state.max_batch_rows).map_err(failure_status)?;
        let Scored { model, outcome, capture } =
            state.score(&model, rows, routing, id.as_deref()).await.map_err(status_of)?;
        let predictions = outcome.map_err(|failure| match failure {
            // The plugin refusing a row is the caller's fault, as over REST.
            PredictFailure::InvalidInput { row, message } => {
                Status::invalid_argument(format!("batch element {row}: {message}"))
            }
            failure => status_of(ApiError::Plugin { failure, version: model.version.clone() }),
        })?;

        let mut response = ModelInferResponse {
            model_name: model.info.name.clone(),
            model_version: model.version.clone(),
            id: request.id,
            ..Default::default()
        };
        for name in outputs {
            let output = Output::new(name, &predictions, &model);
            // Answered the way the inputs came: raw bytes, or typed contents.
            let contents = if raw {
                let mut buffer = Vec::new();
                output.encode(&mut buffer);
                response.raw_output_contents.push(buffer);
                None
            } else {
                Some(match name {
                    OutputName::Label => InferTensorContents {
                        bytes_contents: output.chosen().map(|label| label.as_bytes().to_vec()).collect(),
                        ..Default::default()
                    },
                    OutputName::Probabilities => InferTensorContents {
                        fp64_contents: output.probabilities().collect(),
                        ..Default::default()
                    },
                })
            };
            response.outputs.push(InferOutputTensor {
                name: name.as_str().into(),
                datatype: output.datatype.as_str().into(),
                shape: output.shape,
                parameters: Default::default(),
                contents,
            });
        }
        if let Some(capture) = capture {
            capture.record(model, predictions);
        }
        Ok(Response::new(response))
    }
}

/// The outputs to answer with, in order: those requested, or all of them.
/// The request's `routing_key` parameter, if it is a string.
fn routing_parameter(request: &ModelInferRequest) -> Option<String> {
    match request.parameters.get("routing_key")?.parameter_choice.as_ref()? {
        infer_parameter::ParameterChoice::StringParam(key) => Some(key.clone()),
        _ => None,
    }
}

fn requested(
    outputs: &[model_infer_request::InferRequestedOutputTensor],
) -> Result<Vec<OutputName>, Failure> {
    if outputs.is_empty() {
        return Ok(OutputName::ALL.to_vec());
    }
    let names = outputs.iter().map(|output| known_output(&output.name)).collect::<Result<Vec<_>, _>>()?;
    refuse_repeats(&names)?;
    Ok(names)
}

/// An input as the REST path reads it: raw bytes in the binary layout, or typed contents.
fn tensor_of(
    input: model_infer_request::InferInputTensor,
    raw: Option<Vec<u8>>,
) -> Result<InferInputTensor, Status> {
    let name = input.name;
    let Some(datatype) = Datatype::parse(&input.datatype) else {
        return Err(Status::invalid_argument(format!(
            "input \"{name}\" has datatype \"{}\", which this server does not read; send one of {}",
            input.datatype,
            Datatype::list(&Datatype::ALL)
        )));
    };
    let (data, binary) = match raw {
        Some(raw) => (Vec::new(), Some(Bytes::from(raw))),
        None => (contents_of(&name, datatype, input.contents.unwrap_or_default())?, None),
    };
    let binary_size = binary.as_ref().map(Bytes::len);
    Ok(InferInputTensor { name, shape: input.shape, datatype, parameters: None, data, binary_size, binary })
}

/// Typed contents as the JSON elements the REST path checks: the field of the datatype.
fn contents_of(name: &str, datatype: Datatype, contents: InferTensorContents) -> Result<Vec<Value>, Status> {
    Ok(match datatype {
        Datatype::Bytes => contents
            .bytes_contents
            .into_iter()
            .enumerate()
            .map(|(i, element)| {
                String::from_utf8(element).map(Value::String).map_err(|_| {
                    Status::invalid_argument(format!(
                        "input \"{name}\" (BYTES): element {i} is not UTF-8 text"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Datatype::Fp32 => contents.fp32_contents.into_iter().map(|x| Value::from(f64::from(x))).collect(),
        Datatype::Fp64 => contents.fp64_contents.into_iter().map(Value::from).collect(),
        Datatype::Int8 | Datatype::Int16 | Datatype::Int32 => {
            contents.int_contents.into_iter().map(Value::from).collect()
        }
        Datatype::Int64 => contents.int64_contents.into_iter().map(Value::from).collect(),
        Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 => {
            contents.uint_contents.into_iter().map(Value::from).collect()
        }
        Datatype::Uint64 => contents.uint64_contents.into_iter().map(Value::from).collect(),
    })
}
