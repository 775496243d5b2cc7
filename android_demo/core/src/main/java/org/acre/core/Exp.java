package org.acre.core;

/**
 * exp(x), correctly rounded (to within ~1e-13 ulp of the exact value before the one rounding).
 *
 * <p>Why not Math.exp: Java's exp may be 1 ulp off the nearest double, and so may the C library
 * numpy calls; a softmax over span scores must give the same bits in every port. A correctly rounded
 * exp is the one definition every platform can meet (glibc's exp agrees with it on ~99.9% of inputs
 * and on every value of the shared test vectors).
 *
 * <p>Method: x = k ln2 + r with r in double-double, exp(r / 512) by its Taylor series in
 * double-double, squared 9 times, rounded once, scaled by 2^k. Results in the subnormal range fall
 * back to Math.exp (span scores never get there: the softmax subtracts the maximum).
 */
public final class Exp {
    private static final double LN2_HI = 0.6931471805599453;  // nearest double to ln 2
    private static final double LN2_LO = 2.3190468138462996e-17;  // ln 2 - LN2_HI
    private static final int HALVINGS = 9;

    private Exp() {}

    public static double exp(double x) {
        if (Double.isNaN(x)) return x;
        if (x > 709.782712893384) return Double.POSITIVE_INFINITY;
        if (x < -708.0) return Math.exp(x);  // subnormal or zero result
        if (x == 0) return 1.0;
        double k = Math.rint(x / LN2_HI);
        // r = x - k ln2, exactly enough: k * LN2_HI as an exact product hi + lo
        double p = k * LN2_HI;
        double pErr = productError(k, LN2_HI, p);
        double s = x - p;
        double sErr = sumError(x, -p, s);
        double t = sErr - pErr - k * LN2_LO;
        double rHi = s + t;
        double rLo = t - (rHi - s);
        double scale = 1.0 / (1 << HALVINGS);
        rHi *= scale;
        rLo *= scale;
        // Taylor series by Horner: e = 1 + r (1 + r/2 (1 + r/3 (...)))
        double eHi = 1.0;
        double eLo = 0.0;
        for (int n = 12; n >= 1; n--) {
            double[] q = mul(eHi, eLo, rHi, rLo);
            q = divide(q[0], q[1], n);
            q = add(1.0, 0.0, q[0], q[1]);
            eHi = q[0];
            eLo = q[1];
        }
        for (int i = 0; i < HALVINGS; i++) {
            double[] q = mul(eHi, eLo, eHi, eLo);
            eHi = q[0];
            eLo = q[1];
        }
        return Math.scalb(eHi + eLo, (int) k);  // eHi + eLo: the single rounding
    }

    // ---- double-double arithmetic (Dekker/Knuth; no fma, so it runs the same on every JVM) ----

    private static double sumError(double a, double b, double s) {
        double bb = s - a;
        return (a - (s - bb)) + (b - bb);
    }

    private static double productError(double a, double b, double p) {
        double[] as = split(a);
        double[] bs = split(b);
        return ((as[0] * bs[0] - p) + as[0] * bs[1] + as[1] * bs[0]) + as[1] * bs[1];
    }

    private static double[] split(double a) {
        double t = 134217729.0 * a;  // 2^27 + 1
        double hi = t - (t - a);
        return new double[] {hi, a - hi};
    }

    private static double[] normalize(double hi, double lo) {
        double s = hi + lo;
        return new double[] {s, lo - (s - hi)};
    }

    private static double[] add(double aHi, double aLo, double bHi, double bLo) {
        double s = aHi + bHi;
        double e = sumError(aHi, bHi, s);
        double t = aLo + bLo;
        double f = sumError(aLo, bLo, t);
        e += t;
        double[] n = normalize(s, e);
        return normalize(n[0], n[1] + f);
    }

    private static double[] mul(double aHi, double aLo, double bHi, double bLo) {
        double p = aHi * bHi;
        double e = productError(aHi, bHi, p) + (aHi * bLo + aLo * bHi);
        return normalize(p, e);
    }

    private static double[] divide(double aHi, double aLo, int n) {
        double q = aHi / n;
        double p = q * n;
        double pErr = productError(q, n, p);
        double rest = ((aHi - p) - pErr + aLo) / n;
        return normalize(q, rest);
    }
}
