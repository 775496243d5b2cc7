import Foundation

/// exp(x), correctly rounded (to within ~1e-13 ulp of the exact value before the one rounding): the
/// algorithm of the JVM core's Exp.java, step for step; acre/runtime/selection.py exact_exp gives the same
/// doubles (by 40-digit decimals).
///
/// Why not Foundation's exp: it may be 1 ulp off the nearest double, and so may the C library numpy calls;
/// a softmax over span scores must give the same bits in every port. A correctly rounded exp is the one
/// definition every platform can meet.
///
/// Method: x = k ln2 + r with r in double-double, exp(r / 512) by its Taylor series in double-double,
/// squared 9 times, rounded once, scaled by 2^k. Results in the subnormal range fall back to the C
/// library's exp (span scores never get there: the softmax subtracts the maximum). The error terms below
/// need every product and sum rounded on its own: Swift does not contract a * b + c into a fused
/// multiply-add unless asked to, so no fma is used, as on the JVM.
public enum Exp {
    private static let ln2Hi = 0.6931471805599453  // nearest double to ln 2
    private static let ln2Lo = 2.3190468138462996e-17  // ln 2 - ln2Hi
    private static let halvings = 9

    public static func exp(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x > 709.782712893384 { return .infinity }
        if x < -708.0 { return libraryExp(x) }  // subnormal or zero result
        if x == 0 { return 1.0 }
        let k = (x / ln2Hi).rounded(.toNearestOrEven)  // Math.rint
        // r = x - k ln2, exactly enough: k * ln2Hi as an exact product hi + lo
        let p = k * ln2Hi
        let pErr = productError(k, ln2Hi, p)
        let s = x - p
        let sErr = sumError(x, -p, s)
        let t = sErr - pErr - k * ln2Lo
        var rHi = s + t
        var rLo = t - (rHi - s)
        let scale = 1.0 / Double(1 << halvings)
        rHi *= scale
        rLo *= scale
        let r = DoubleDouble(hi: rHi, lo: rLo)
        // Taylor series by Horner: e = 1 + r (1 + r/2 (1 + r/3 (...)))
        var e = DoubleDouble(hi: 1.0, lo: 0.0)
        for n in stride(from: 12, through: 1, by: -1) {
            e = add(DoubleDouble(hi: 1.0, lo: 0.0), divide(mul(e, r), n))
        }
        for _ in 0..<halvings {
            e = mul(e, e)
        }
        // e.hi + e.lo: the single rounding; then * 2^k, exact in the normal range (Math.scalb)
        return Double(sign: .plus, exponent: Int(k), significand: e.hi + e.lo)
    }

    // MARK: - double-double arithmetic (Dekker/Knuth; no fma, so it runs the same everywhere)

    private struct DoubleDouble {
        var hi: Double
        var lo: Double
    }

    private static func sumError(_ a: Double, _ b: Double, _ s: Double) -> Double {
        let bb = s - a
        return (a - (s - bb)) + (b - bb)
    }

    private static func productError(_ a: Double, _ b: Double, _ p: Double) -> Double {
        let (aHi, aLo) = split(a)
        let (bHi, bLo) = split(b)
        return ((aHi * bHi - p) + aHi * bLo + aLo * bHi) + aLo * bLo
    }

    private static func split(_ a: Double) -> (hi: Double, lo: Double) {
        let t = 134217729.0 * a  // 2^27 + 1
        let hi = t - (t - a)
        return (hi, a - hi)
    }

    private static func normalize(_ hi: Double, _ lo: Double) -> DoubleDouble {
        let s = hi + lo
        return DoubleDouble(hi: s, lo: lo - (s - hi))
    }

    private static func add(_ a: DoubleDouble, _ b: DoubleDouble) -> DoubleDouble {
        let s = a.hi + b.hi
        var e = sumError(a.hi, b.hi, s)
        let t = a.lo + b.lo
        let f = sumError(a.lo, b.lo, t)
        e += t
        let n = normalize(s, e)
        return normalize(n.hi, n.lo + f)
    }

    private static func mul(_ a: DoubleDouble, _ b: DoubleDouble) -> DoubleDouble {
        let p = a.hi * b.hi
        let e = productError(a.hi, b.hi, p) + (a.hi * b.lo + a.lo * b.hi)
        return normalize(p, e)
    }

    private static func divide(_ a: DoubleDouble, _ n: Int) -> DoubleDouble {
        let d = Double(n)
        let q = a.hi / d
        let p = q * d
        let pErr = productError(q, d, p)
        let rest = ((a.hi - p) - pErr + a.lo) / d
        return normalize(q, rest)
    }
}

/// The C library's exp (outside the enum, where `exp` would name Exp.exp itself).
private func libraryExp(_ x: Double) -> Double {
    exp(x)
}
