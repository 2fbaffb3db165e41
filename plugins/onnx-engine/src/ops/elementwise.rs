//! Element-wise arithmetic with numpy broadcasting (`Add`, `Sub`, `Mul`, `Div`) and
//! element-wise functions of floats (`Exp`, `Sigmoid`, …).

use super::{Kernel, required};
use crate::tensor::{Data, Strings, Tensor, broadcast_index, broadcast_shape};
use std::ops;

#[derive(Clone, Copy)]
enum Operation {
    Add,
    Sub,
    Mul,
    Div,
}

pub struct Arithmetic(Operation);

impl Arithmetic {
    pub fn new(op_type: &str) -> Self {
        Self(match op_type {
            "Add" => Operation::Add,
            "Sub" => Operation::Sub,
            "Mul" => Operation::Mul,
            _ => Operation::Div,
        })
    }
}

trait Number:
    Copy + ops::Add<Output = Self> + ops::Sub<Output = Self> + ops::Mul<Output = Self> + ops::Div<Output = Self>
{
    fn zero() -> Self;
}

macro_rules! number {
    ($($t:ty),*) => { $(impl Number for $t { fn zero() -> Self { 0 as $t } })* };
}
number!(f32, f64, i64, i32);

impl Operation {
    fn apply<T: Number>(self, a: T, b: T) -> Result<T, String> {
        Ok(match self {
            Self::Add => a + b,
            Self::Sub => a - b,
            Self::Mul => a * b,
            Self::Div => a / b,
        })
    }

    /// Integer division by zero would panic; floats give infinities as IEEE says.
    fn apply_integer<T: Number + PartialEq>(self, a: T, b: T) -> Result<T, String> {
        match self {
            Self::Div if b == T::zero() => Err("integer division by zero".into()),
            _ => self.apply(a, b),
        }
    }
}

fn combine<T: Number>(
    a: &[T],
    b: &[T],
    a_index: &[usize],
    b_index: &[usize],
    f: impl Fn(T, T) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    a_index.iter().zip(b_index).map(|(&i, &j)| f(a[i], b[j])).collect()
}

impl Kernel for Arithmetic {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
        let shape = broadcast_shape(&a.shape, &b.shape)?;
        let (ai, bi) = (broadcast_index(&a.shape, &shape), broadcast_index(&b.shape, &shape));
        let op = self.0;
        let data = match (&a.data, &b.data) {
            (Data::F32(x), Data::F32(y)) => Data::F32(combine(x, y, &ai, &bi, |p, q| op.apply(p, q))?),
            (Data::F64(x), Data::F64(y)) => Data::F64(combine(x, y, &ai, &bi, |p, q| op.apply(p, q))?),
            (Data::I64(x), Data::I64(y)) => {
                Data::I64(combine(x, y, &ai, &bi, |p, q| op.apply_integer(p, q))?)
            }
            (Data::I32(x), Data::I32(y)) => {
                Data::I32(combine(x, y, &ai, &bi, |p, q| op.apply_integer(p, q))?)
            }
            _ => return Err(format!("cannot combine {} with {}", a.dtype().name(), b.dtype().name())),
        };
        Ok(vec![Tensor { shape, data }])
    }
}

pub struct Unary(fn(f64) -> f64);

impl Unary {
    pub fn new(op_type: &str) -> Self {
        Self(match op_type {
            "Exp" => f64::exp,
            "Log" => f64::ln,
            "Sqrt" => f64::sqrt,
            "Abs" => f64::abs,
            "Neg" => |x| -x,
            "Reciprocal" => |x| 1.0 / x,
            "Sigmoid" => |x| 1.0 / (1.0 + (-x).exp()),
            "Tanh" => f64::tanh,
            "Floor" => f64::floor,
            _ => f64::ceil,
        })
    }
}

impl Kernel for Unary {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let f = self.0;
        let data = match &x.data {
            Data::F32(v) => Data::F32(v.iter().map(|&e| f(f64::from(e)) as f32).collect()),
            Data::F64(v) => Data::F64(v.iter().map(|&e| f(e)).collect()),
            other => return Err(format!("expected float or double, got {}", other.dtype().name())),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}
