//! SQL functions chainwatch adds to DataFusion: `eval_time()` and `days_between(a, b)`.
//!
//! In: DataFusion argument arrays. Out: a timestamp scalar (`eval_time`) or a Float64 array of
//! day differences (`days_between`).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimestampMillisecondType};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::events::timestamp_type;

/// `eval_time()`: the event-time watermark of the current evaluation.
#[derive(Debug)]
pub struct EvalTime {
    clock: Arc<AtomicI64>,
    signature: Signature,
}

impl EvalTime {
    pub fn new(clock: Arc<AtomicI64>) -> Self {
        EvalTime {
            clock,
            // Volatile, not Stable: the optimiser would fold a Stable call into a constant, and
            // the optimised plans are cached across evaluations (the clock moves between them).
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl PartialEq for EvalTime {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.clock, &other.clock)
    }
}
impl Eq for EvalTime {}
impl Hash for EvalTime {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.clock) as usize).hash(state);
    }
}

impl ScalarUDFImpl for EvalTime {
    fn name(&self) -> &str {
        "eval_time"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(timestamp_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = self.clock.load(Ordering::SeqCst);
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(now),
            Some("UTC".into()),
        )))
    }
}

/// `days_between(later, earlier)`: `(later - earlier)` in days, as Float64; dates and
/// timestamps of any unit are accepted.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DaysBetween {
    signature: Signature,
}

impl DaysBetween {
    pub fn new() -> Self {
        DaysBetween {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn is_time(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null
    )
}

impl ScalarUDFImpl for DaysBetween {
    fn name(&self) -> &str {
        "days_between"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 || !arg_types.iter().all(is_time) {
            return plan_err!(
                "days_between(later, earlier) takes two dates or timestamps, got {arg_types:?}"
            );
        }
        Ok(vec![timestamp_type(), timestamp_type()])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = cast(&arrays[0], &timestamp_type())?;
        let b = cast(&arrays[1], &timestamp_type())?;
        let a = a.as_primitive::<TimestampMillisecondType>();
        let b = b.as_primitive::<TimestampMillisecondType>();
        let out: Float64Array = (0..a.len())
            .map(|i| {
                (a.is_valid(i) && b.is_valid(i))
                    .then(|| (a.value(i) - b.value(i)) as f64 / 86_400_000.0)
            })
            .collect();
        if all_scalars {
            let v = out.is_valid(0).then(|| out.value(0));
            return Ok(ColumnarValue::Scalar(ScalarValue::Float64(v)));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
