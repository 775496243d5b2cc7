/// K/V values in an L2 record: float16, or int8 with one float16 scale per row of D values
/// (acre/runtime/l2.py _encode/_decode). int8 decodes as Float(q) * Float(scale).
enum KVCodec {
    /// Encode S rows per (layer, head), `values` [L, Hkv, S, D] float32, into `record` at `offset`
    /// (and the scales at `scaleOffset` for int8).
    static func encode(
        _ values: [Float], meta: StoreMeta, into record: inout [UInt8], offset: Int, scaleOffset: Int
    ) {
        let d = meta.headDim
        switch meta.codec {
        case .float16:
            for i in 0..<values.count { ByteIO.put16(&record, offset + 2 * i, Half.fromFloat(values[i])) }
        case .int8:
            for row in 0..<(values.count / d) {
                var largest: Float = 0
                for j in 0..<d { largest = Swift.max(largest, Swift.abs(values[row * d + j])) }
                let exact = largest / 127  // float32, as numpy divides a float32 array by 127.0
                let scaleBits = Half.fromFloat(exact == 0 ? 1 : exact)
                let scale = Half.toFloat(scaleBits)
                ByteIO.put16(&record, scaleOffset + 2 * row, scaleBits)
                for j in 0..<d {
                    let q = (values[row * d + j] / scale).rounded(.toNearestOrEven)  // np.rint
                    let clipped: Float = q.isNaN ? 0 : Swift.min(Swift.max(q, -127), 127)
                    record[offset + row * d + j] = UInt8(bitPattern: Int8(clipped))
                }
            }
        }
    }

    /// Decode the first n of S rows per (layer, head): -> [L, Hkv, n, D] float32.
    static func decode(_ record: [UInt8], meta: StoreMeta, offset: Int, scaleOffset: Int, rows n: Int) -> [Float] {
        let (s, d) = (meta.spanTokens, meta.headDim)
        var out = [Float]()
        out.reserveCapacity(meta.layers * meta.kvHeads * n * d)
        for group in 0..<(meta.layers * meta.kvHeads) {
            for t in 0..<n {
                let row = group * s + t
                switch meta.codec {
                case .float16:
                    for j in 0..<d { out.append(Half.toFloat(ByteIO.u16(record, offset + 2 * (row * d + j)))) }
                case .int8:
                    let scale = Half.toFloat(ByteIO.u16(record, scaleOffset + 2 * row))
                    for j in 0..<d {
                        out.append(Float(Int8(bitPattern: record[offset + row * d + j])) * scale)
                    }
                }
            }
        }
        return out
    }
}
