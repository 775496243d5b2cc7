/// Float32 sums in numpy's order, where agreeing bit for bit with the Python runtime matters (the
/// norms that rank representative keys, the span index statistics). numpy reduces a contiguous float32
/// row by pairwise summation: below 8 elements one by one, up to 128 with 8 interleaved accumulators,
/// above that by halves (a multiple of 8 first).
public enum NumpySum {
    public static func pairwise(_ a: UnsafeBufferPointer<Float>, _ start: Int, _ n: Int) -> Float {
        if n < 8 {
            var sum: Float = 0
            for i in 0..<n { sum += a[start + i] }
            return sum
        }
        if n <= 128 {
            var r = [Float](repeating: 0, count: 8)
            for j in 0..<8 { r[j] = a[start + j] }
            var i = 8
            while i < n - n % 8 {
                for j in 0..<8 { r[j] += a[start + i + j] }
                i += 8
            }
            var sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n {
                sum += a[start + i]
                i += 1
            }
            return sum
        }
        var half = n / 2
        half -= half % 8
        return pairwise(a, start, half) + pairwise(a, start + half, n - half)
    }

    public static func sum(_ values: [Float]) -> Float {
        values.withUnsafeBufferPointer { pairwise($0, 0, $0.count) }
    }

    /// numpy.linalg.norm of one float32 row: squares, pairwise sum, correctly rounded sqrt.
    public static func norm(_ x: UnsafeBufferPointer<Float>, _ start: Int, _ n: Int) -> Float {
        var squares = [Float](repeating: 0, count: n)
        for i in 0..<n { squares[i] = x[start + i] * x[start + i] }
        return sum(squares).squareRoot()
    }

    /// float32 mean and standard deviation as numpy's x.mean() and x.std() compute them.
    public static func meanStd(_ values: [Float]) -> (mean: Float, std: Float) {
        let count = Float(values.count)
        let mean = sum(values) / count
        let squares = values.map { ($0 - mean) * ($0 - mean) }
        return (mean, (sum(squares) / count).squareRoot())
    }
}
