package org.acre.core;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * numpy's .npz (a zip of .npy arrays, as np.savez writes it: stored, not deflated), for the pot
 * state saved after ingest (pot.npz of an L2 store), so a document ingested by either runtime
 * reopens in the other. Little-endian, C order; dtypes f4, i8, i4, i1, b1.
 */
public final class Npz {
    private Npz() {}

    /** One array: numpy dtype descr ("<f4", "<i8", "<i4", "|i1", "|b1"), shape and LE data. */
    public record Array(String descr, long[] shape, byte[] data) {
        public ByteBuffer buffer() {
            return ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        }

        public long size() {
            long n = 1;
            for (long s : shape) n *= s;
            return n;
        }
    }

    public static void write(Path file, Map<String, Array> arrays) throws IOException {
        try (ZipOutputStream zip = new ZipOutputStream(new BufferedOutputStream(Files.newOutputStream(file), 1 << 16))) {
            for (Map.Entry<String, Array> e : arrays.entrySet()) {
                byte[] header = header(e.getValue());
                byte[] data = e.getValue().data();
                CRC32 crc = new CRC32();
                crc.update(header);
                crc.update(data);
                ZipEntry entry = new ZipEntry(e.getKey() + ".npy");
                entry.setMethod(ZipEntry.STORED);
                entry.setSize(header.length + (long) data.length);
                entry.setCompressedSize(header.length + (long) data.length);
                entry.setCrc(crc.getValue());
                zip.putNextEntry(entry);
                zip.write(header);
                zip.write(data);
                zip.closeEntry();
            }
        }
    }

    /** The .npy v1.0 header, padded with spaces so the data starts on a 64-byte boundary. */
    private static byte[] header(Array a) {
        StringBuilder shape = new StringBuilder("(");
        for (int i = 0; i < a.shape().length; i++) shape.append(i > 0 ? ", " : "").append(a.shape()[i]);
        shape.append(a.shape().length == 1 ? ",)" : ")");
        String dict = "{'descr': '" + a.descr() + "', 'fortran_order': False, 'shape': " + shape + ", }";
        int length = dict.length() + 1;
        int padded = (10 + length + 63) / 64 * 64 - 10;
        StringBuilder text = new StringBuilder(dict);
        while (text.length() < padded - 1) text.append(' ');
        text.append('\n');
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0x93);
        byte[] magic = "NUMPY".getBytes(StandardCharsets.US_ASCII);
        out.write(magic, 0, magic.length);
        out.write(1);
        out.write(0);
        out.write(padded & 0xff);
        out.write(padded >>> 8);
        byte[] body = text.toString().getBytes(StandardCharsets.US_ASCII);
        out.write(body, 0, body.length);
        return out.toByteArray();
    }

    private static final Pattern DESCR = Pattern.compile("'descr':\\s*'([^']+)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order':\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape':\\s*\\(([^)]*)\\)");

    public static Map<String, Array> read(Path file) throws IOException {
        Map<String, Array> out = new LinkedHashMap<>();
        try (ZipFile zip = new ZipFile(file.toFile())) {
            for (ZipEntry entry : java.util.Collections.list(zip.entries())) {
                String name = entry.getName();
                if (!name.endsWith(".npy")) continue;
                try (InputStream in = zip.getInputStream(entry)) {
                    out.put(name.substring(0, name.length() - 4), readNpy(in, name));
                }
            }
        }
        return out;
    }

    private static Array readNpy(InputStream in, String name) throws IOException {
        byte[] lead = readN(in, 10);
        if ((lead[0] & 0xff) != 0x93 || !new String(lead, 1, 5, StandardCharsets.US_ASCII).equals("NUMPY")) {
            throw new IOException(name + ": not a .npy array");
        }
        int major = lead[6];
        int length;
        if (major == 1) {
            length = (lead[8] & 0xff) | (lead[9] & 0xff) << 8;
        } else {  // v2/v3: 4-byte header length
            byte[] more = readN(in, 2);
            length = (lead[8] & 0xff) | (lead[9] & 0xff) << 8 | (more[0] & 0xff) << 16 | (more[1] & 0xff) << 24;
        }
        String dict = new String(readN(in, length), StandardCharsets.ISO_8859_1);
        Matcher descr = DESCR.matcher(dict);
        Matcher fortran = FORTRAN.matcher(dict);
        Matcher shape = SHAPE.matcher(dict);
        if (!descr.find() || !fortran.find() || !shape.find() || fortran.group(1).equals("True")) {
            throw new IOException(name + ": unsupported .npy header " + dict.trim());
        }
        String[] dims = shape.group(1).split(",");
        long count = 1;
        long[] dimensions = new long[0];
        for (String d : dims) {
            if (d.trim().isEmpty()) continue;
            dimensions = java.util.Arrays.copyOf(dimensions, dimensions.length + 1);
            dimensions[dimensions.length - 1] = Long.parseLong(d.trim());
            count *= dimensions[dimensions.length - 1];
        }
        String type = descr.group(1);
        if (type.startsWith(">")) throw new IOException(name + ": big-endian arrays are not supported");
        int item = Integer.parseInt(type.substring(2));
        long bytes = count * item;
        if (bytes > Integer.MAX_VALUE) throw new IOException(name + ": array too large");
        return new Array(type, dimensions, readN(in, (int) bytes));
    }

    private static byte[] readN(InputStream in, int n) throws IOException {
        byte[] out = new byte[n];
        int done = 0;
        while (done < n) {
            int got = in.read(out, done, n - done);
            if (got < 0) throw new IOException("truncated .npy data");
            done += got;
        }
        return out;
    }

    /** Convenience: the LE bytes of arrays in native buffers or Java arrays. */
    public static Array floats(java.nio.FloatBuffer x, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(x.capacity() * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < x.capacity(); i++) b.putFloat(x.get(i));
        return new Array("<f4", shape, b.array());
    }

    public static Array longs(java.nio.LongBuffer x, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(x.capacity() * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < x.capacity(); i++) b.putLong(x.get(i));
        return new Array("<i8", shape, b.array());
    }

    public static Array longs(long[] x) {
        ByteBuffer b = ByteBuffer.allocate(x.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : x) b.putLong(v);
        return new Array("<i8", new long[] {x.length}, b.array());
    }

    public static Array ints(int[] x) {
        ByteBuffer b = ByteBuffer.allocate(x.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : x) b.putInt(v);
        return new Array("<i4", new long[] {x.length}, b.array());
    }

    public static Array bytes(String descr, byte[] x) {
        return new Array(descr, new long[] {x.length}, x.clone());
    }

    /** crc32 of a whole file (store.json's pot_crc32). */
    public static long crc32(Path file) throws IOException {
        CRC32 crc = new CRC32();
        try (InputStream in = Files.newInputStream(file)) {
            byte[] block = new byte[1 << 16];
            for (int n; (n = in.read(block)) > 0; ) crc.update(block, 0, n);
        }
        return crc.getValue();
    }

}
