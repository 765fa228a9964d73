//! Errors as Docker's API gives them: a status code (404 for a missing object, 409 for a
//! conflict, 400 for bad input, 500 otherwise) and a body `{"message": "…"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // 501 is what a container's configuration does not do (its log driver keeps nothing):
        // the user's business, not the daemon's trouble.
        if self.status.is_server_error() && self.status != StatusCode::NOT_IMPLEMENTED {
            tracing::warn!("{}", self.message);
        }
        let body = serde_json::json!({ "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> Self {
        use berth_engine::Error as E;
        let status = match &e {
            E::NotFound(_) | E::NotFoundOf(..) | E::NoSuchExec(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Image(i) => return image_status(i, e.to_string()),
            E::Network(n) => return network_status(n, e.to_string()),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<berth_image::Error> for ApiError {
    fn from(e: berth_image::Error) -> Self {
        let message = e.to_string();
        image_status(&e, message)
    }
}

impl From<berth_network::Error> for ApiError {
    fn from(e: berth_network::Error) -> Self {
        let message = e.to_string();
        network_status(&e, message)
    }
}

fn image_status(e: &berth_image::Error, message: String) -> ApiError {
    use berth_image::Error as E;
    let status = match e {
        E::ImageNotFound(_) | E::NotFound { .. } => StatusCode::NOT_FOUND,
        E::ImageInUse { .. } | E::Ambiguous(_) => StatusCode::CONFLICT,
        E::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        E::InvalidReference { .. }
        | E::InvalidArchive(_)
        | E::InvalidPlatform(_)
        | E::NoMatchingPlatform { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, message)
}

fn network_status(e: &berth_network::Error, message: String) -> ApiError {
    use berth_network::Error as E;
    let status = match e {
        E::NoSuchNetwork(_) | E::NoSuchSandbox(_) | E::NotConnected { .. } => StatusCode::NOT_FOUND,
        E::NameTaken(_) | E::AlreadyConnected { .. } | E::InUse { .. } | E::PortTaken { .. } => {
            StatusCode::CONFLICT
        }
        E::Invalid(_) | E::Unsupported { .. } | E::Ipam(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, message)
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;
